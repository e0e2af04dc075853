"""``python -m pipeline``: the CLI's entry; the Keras flavour is set before anything loads TensorFlow."""

import os
import sys

from model.keras_env import KERAS_ENV

os.environ.update(KERAS_ENV)  # pipeline.cli imports TensorFlow only inside its commands, but be first anyway

from pipeline.cli import main

sys.exit(main())
