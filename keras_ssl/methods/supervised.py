import keras
import tensorflow as tf
from keras import ops
from keras_hub.models import ImageClassifier

from keras_ssl.distribute.replicas import scale_loss_for_replicas
from keras_ssl.hub.keras_hub_internals import list_subclasses
from keras_ssl.methods.method_model import MethodModel
from keras_ssl.utils.validation import with_label_check


def classifier_class_for(backbone):
    """The keras_ssl `ImageClassifier` subclass built for `backbone`."""
    matches = [
        cls
        for cls in list_subclasses(ImageClassifier)
        if getattr(cls, "backbone_cls", None) is type(backbone)
        and cls.__module__.startswith("keras_ssl.models")
    ]
    if not matches:
        raise ValueError(
            f"No keras_ssl classifier exists for a backbone of type "
            f"{type(backbone).__name__}. Use a keras_ssl backbone "
            "(CRATEBackbone, ViTBackbone or ResNetBackbone)."
        )
    return matches[0]


def default_preprocessor(backbone, mean=None, std=None):
    """The family preprocessor at the backbone's image size.

    Args:
        backbone: a keras_ssl backbone.
        mean: per-channel mean on the [0, 1] scale (default ImageNet's).
        std: per-channel std on the [0, 1] scale (default ImageNet's).
    """
    preprocessor_cls = classifier_class_for(backbone).preprocessor_cls
    converter_cls = preprocessor_cls.image_converter_cls
    height, width = backbone.image_shape[:2]
    image_size = None if None in (height, width) else (height, width)
    normalisation = {}
    if mean is not None:
        normalisation = {"mean": mean, "std": std}
    return preprocessor_cls(converter_cls(image_size=image_size, **normalisation))


@keras.saving.register_keras_serializable(package="keras_ssl")
class Supervised(MethodModel):
    """Supervised training of a backbone: the baseline of every method.

    Cross-entropy on the labels through the family's classifier (token or
    average pooling, then a Linear head). Raw `[0, 255]` images go in; the
    preprocessor (resize, normalise) runs inside the model, on the device,
    on every backend. `fit` checks the labels against `num_classes`, so a
    wrong class count fails with a clear error instead of a NaN loss.

    The trained classifier is `model.classifier`, a keras-hub
    `ImageClassifier`: `model.export_classifier(folder)` writes a preset
    that `ImageClassifier.from_preset(folder)` loads.

    Args:
        backbone: a keras_ssl backbone.
        num_classes: int. Number of classes.
        preprocessor: "default" (the family's preprocessor at the backbone's
            image size, ImageNet mean and std), None (the inputs are already
            preprocessed), or an `ImageClassifierPreprocessor`.
        pooling: None for the family default, or a pooling the family's
            classifier accepts ("token"/"mean" for transformers, "avg"/"max"
            for ResNets).
        dropout: float. Dropout before the head.
        auxiliary_tasks: a list of `AuxiliaryTask`s (HPAH, MPAH, SFE, ...)
            whose weighted losses are added to the supervised one during
            training. They share one forward pass and stack freely; they
            never change inference.
        **kwargs: base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ViTBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    model = keras_ssl.methods.Supervised(backbone, num_classes=10)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.fit(keras_ssl.data.load_dataset("sample", batch_size=64), epochs=5)
    ```
    """

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor="default",
        pooling=None,
        dropout=0.0,
        auxiliary_tasks=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"`num_classes` must be a positive int; received {num_classes}."
            )
        if isinstance(preprocessor, str):
            if preprocessor != "default":
                raise ValueError(
                    "`preprocessor` must be 'default', None or a "
                    f"preprocessor layer; received '{preprocessor}'."
                )
            preprocessor = default_preprocessor(backbone)
        classifier_kwargs = {"dropout": dropout}
        if pooling is not None:
            classifier_kwargs["pooling"] = pooling
        self.classifier = classifier_class_for(backbone)(
            backbone, num_classes, preprocessor=preprocessor, **classifier_kwargs
        )
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout
        self.auxiliary_tasks = list(auxiliary_tasks)
        names = [task.name for task in self.auxiliary_tasks]
        if len(set(names)) != len(names):
            raise ValueError(
                f"Auxiliary task names must be unique; received {names}. "
                "Pass `name=` to tell two tasks of one kind apart."
            )
        for task in self.auxiliary_tasks:
            task.attach(self)
            task.build()  # `attach` made its layers.
        expanding = [
            task.name
            for task in self.auxiliary_tasks
            if task.expands_batch_after is not None
        ]
        if len(expanding) > 1:
            raise ValueError(
                "Only one auxiliary task may append transformed copies to "
                f"the batch; received {expanding}. Train them in separate "
                "models."
            )

    @property
    def backbone(self):
        return self.classifier.backbone

    @property
    def preprocessor(self):
        return self.classifier.preprocessor

    def call(self, images, training=None):
        if self.preprocessor is not None:
            images = self.preprocessor(images)
        if not (training and self.auxiliary_tasks):
            return self.classifier(images, training=training)
        trace = self.trace(images, training=training)
        originals = trace
        if self._expanding_task() is not None:
            batch_size = ops.shape(images)[0]
            originals = keras.tree.map_structure(lambda x: x[:batch_size], trace)
        outputs = {"logits": originals["logits"]}
        for task in self.auxiliary_tasks:
            task_trace = trace if task.expands_batch_after is not None else originals
            outputs[task.name] = task(task_trace, training=training)
        return outputs

    def _expanding_task(self):
        for task in self.auxiliary_tasks:
            if task.expands_batch_after is not None:
                return task
        return None

    def trace(self, images, training=None, expand_batch=True):
        """The classifier's forward pass, keeping what auxiliary tasks read.

        If a task transforms the batch (`expands_batch_after`), its copies
        are appended at that point and every later entry holds the B
        originals first, then the copies.

        Args:
            images: preprocessed images.
            training: bool.
            expand_batch: bool. False traces the originals only.

        Returns:
            A dict with `"images"`, `"logits"`, `"features"` (pooled) and
            `"block_inputs"`, `"block_outputs"`, `"attention"` (token
            backbones) or `"stage_outputs"` (ResNets).
        """
        backbone = self.backbone
        expanding = self._expanding_task() if expand_batch else None

        def expand(x, point):
            if expanding is None or expanding.expands_batch_after != point:
                return x
            return ops.concatenate([x, expanding.expand_batch(x)], axis=0)

        images = expand(images, "input")
        trace = {"images": images}
        if hasattr(backbone, "blocks"):
            attention_layers = set()
            for task in self.auxiliary_tasks:
                attention_layers.update(task.attention_layers)
            tokens = backbone.embed(images, training=training)
            trace["block_inputs"], trace["block_outputs"] = [], []
            trace["attention"] = {}
            for index, block in enumerate(backbone.blocks):
                trace["block_inputs"].append(tokens)
                if index in attention_layers:
                    tokens, trace["attention"][index] = block(
                        tokens, return_attention=True, training=training
                    )
                else:
                    tokens = block(tokens, training=training)
                tokens = expand(tokens, index)
                trace["block_outputs"].append(tokens)
            features = backbone.final_norm(tokens)
        else:
            features = backbone.stem(images, training=training)
            trace["stage_outputs"] = []
            for index, stage in enumerate(backbone.stages):
                features = expand(stage(features, training=training), index)
                trace["stage_outputs"].append(features)
        trace["features"] = self.classifier.pool(features)
        trace["logits"] = self.classifier.head(trace["features"], training=training)
        return trace

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if not isinstance(y_pred, dict):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        loss = super().compute_loss(
            x, y, y_pred["logits"], sample_weight, training
        )
        for task in self.auxiliary_tasks:
            task_loss = scale_loss_for_replicas(
                task.compute_task_loss(y_pred[task.name], y)
            )
            loss = loss + task.weight * ops.cast(task_loss, loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            for task in self.auxiliary_tasks:
                task.update_task_metrics(y_pred[task.name], y)
            return super().compute_metrics(x, y, y_pred["logits"], sample_weight)
        # Evaluation runs the classifier alone: the tasks' metrics were not
        # updated, and reporting their reset values would log zeros.
        results = super().compute_metrics(x, y, y_pred, sample_weight)
        task_metrics = {
            metric.name for task in self.auxiliary_tasks for metric in task.metrics
        }
        return {
            name: value for name, value in results.items() if name not in task_metrics
        }

    def fit(self, x=None, y=None, validation_data=None, **kwargs):
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself; Keras warns if asked to.
            kwargs.setdefault("shuffle", False)
        x, y = with_label_check(x, y, self.num_classes)
        if validation_data is not None:
            validation_data = with_label_check(
                validation_data, None, self.num_classes
            )[0]
        return super().fit(x, y, validation_data=validation_data, **kwargs)

    def compile(
        self,
        optimizer="adamw",
        loss="auto",
        metrics="auto",
        **kwargs,
    ):
        """Compiles with cross-entropy on logits and top-1 accuracy.

        Args:
            optimizer: optimizer or its name.
            loss: "auto" for sparse categorical cross-entropy on logits.
            metrics: "auto" for `accuracy` (sparse categorical accuracy).
            **kwargs: other `keras.Model.compile` arguments.
        """
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy("accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def export_classifier(self, preset_dir):
        """Saves the inference classifier as a keras-hub preset folder."""
        self.classifier.save_to_preset(preset_dir)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes,
                "preprocessor": keras.saving.serialize_keras_object(
                    self.preprocessor
                ),
                "pooling": self.pooling,
                "dropout": self.dropout,
                "auxiliary_tasks": [
                    keras.saving.serialize_keras_object(task)
                    for task in self.auxiliary_tasks
                ],
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        if "auxiliary_tasks" in config:
            config["auxiliary_tasks"] = [
                keras.saving.deserialize_keras_object(task)
                for task in config["auxiliary_tasks"]
            ]
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(
                config["preprocessor"]
            )
        return cls(**config)
