"""Make tiny_dense.tflite: a 32 -> 16 -> 4 dense classifier, full-integer int8.

How the committed model was made (TensorFlow 2.x, CPU):

    python make_model.py            # writes tiny_dense.tflite and test_input.npy

Weights are random (seeded): the example shows the build flow, not accuracy.
Quantization: int8 weights and activations, int8 input and output, calibrated
on 200 seeded random vectors.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent
SEED = 2560


def build() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(SEED)
    return tf.keras.Sequential([
        tf.keras.Input(shape=(32,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(4),
        tf.keras.layers.Softmax(),
    ])


def quantize(model: tf.keras.Model) -> bytes:
    rng = np.random.default_rng(SEED)

    def representative():
        for _ in range(200):
            yield [rng.standard_normal((1, 32)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def main() -> None:
    (HERE / "tiny_dense.tflite").write_bytes(quantize(build()))
    rng = np.random.default_rng(SEED + 1)
    np.save(HERE / "test_input.npy", rng.integers(-128, 128, (1, 32)).astype(np.int8))


if __name__ == "__main__":
    main()
