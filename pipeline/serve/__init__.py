"""Raw text in, labels out: the model bundle, the classifier, the MLflow pyfunc model, the predict CLI.

Serving needs only core/, data/, text/, model/ and this package (the pyfunc model ships just those)."""
