"""The `keras.Model` base of the methods."""

import keras


class MethodModel(keras.Model):
    """A `keras.Model` whose `compile` is overridden (for the method's
    defaults) but keeps Keras' keyword arguments.

    Keras does not recompile a model with an overridden `compile` when it
    loads a `.keras` file, so a loaded method could neither resume `fit`
    nor get its optimizer state back. Ours accept the saved arguments
    unchanged, so loading recompiles and then restores the optimizer's
    variables.
    """

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)
