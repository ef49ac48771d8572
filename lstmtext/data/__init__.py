"""Text in, token ids out: tokenizers, corpora (small and memory-mapped), labelled data, documents."""
