"""Fashion-MNIST image classification: IDX data, MLP/CNN models and the `fashion` CLI."""

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

DEFAULT_DATA_DIR = "data"  # where a download goes unless --data-dir says otherwise
