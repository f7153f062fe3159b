"""The six DVC stages, each a thin `main()`: read params, call the library, write outputs, log.

Stages import the library and never each other."""
