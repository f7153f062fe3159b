"""The MLflow model's code, logged as MLflow's "models from code" (pyfunc.log_model passes this file's
path as `python_model`): MLflow copies this file into the model and runs it on load, where it names
the model with `set_model`. Nothing is pickled, so loading the model unpickles nothing (a pickled
`python_model.pkl` would run whatever code its bytes name, before any check of ours).

Run on load with the model's code/ folder (the `pipeline` serving layers) first on sys.path.
"""
import mlflow

from pipeline.serve.pyfunc import TextClassifierModel

mlflow.models.set_model(TextClassifierModel())
