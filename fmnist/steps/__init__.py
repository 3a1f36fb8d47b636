"""The steps (extract, classify, visualize, finetune, report), each one ``Step`` in the shape of ``base``."""
