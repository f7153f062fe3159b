"""Raw text to tokens: normalisation, the analyzers (KoNLPy, MeCab, plain), Java, the tokenizer and its caches."""
