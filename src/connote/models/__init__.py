"""Model loaders shared by several stages: :mod:`connote.models.efficientnet`, the packaged ImageNet
EfficientNet-Lite0 (the offline describer's labels, the ``efficientnet-lite0`` image embedder and the
stand-in for torchvision weights that cannot be had), and :mod:`connote.models.ocr`, RapidOCR's three
models run step by step for the offline describer. The packaged sentence model (all-MiniLM-L6-v2) is
loaded by :mod:`connote.embedders.text`."""
