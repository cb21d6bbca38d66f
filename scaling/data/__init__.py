"""The data a run trains on: the corpus and its tokenizers (``corpus``), token streams and
the train/validation pair (``tokens``), pre-tokenized ``.bin`` shards (``shards``)."""
