"""What SFE and SLA share: a joint-label task, three inference modes, export."""

import contextlib

import keras
from keras import ops

from keras_ssl.distribute.replicas import scale_loss_for_replicas
from keras_ssl.methods.auxiliary_task import AuxiliaryTask
from keras_ssl.methods.supervised import Supervised
from keras_ssl.methods.supervised import classifier_class_for
from keras_ssl.ops.joint_labels import conditional_logits
from keras_ssl.ops.joint_labels import joint_cross_entropy
from keras_ssl.ops.joint_labels import self_distillation_loss

INFERENCE_MODES = ("si", "ag", "sd")


def rows_by_transform(x, num_transforms):
    """`[K * B, D]` rows stacked transformation-major (the B originals
    first, as `Supervised.trace` appends copies) -> `[B, K, D]`."""
    x = ops.reshape(x, (num_transforms, -1, ops.shape(x)[-1]))
    return ops.transpose(x, (1, 0, 2))


def original_rows(x, num_transforms):
    """The B originals' rows of a transformation-major `[K * B, D]`."""
    return ops.reshape(x, (num_transforms, -1, ops.shape(x)[-1]))[0]


def check_inference(inference, self_distillation=True):
    if inference not in INFERENCE_MODES:
        raise ValueError(
            f"`inference` must be one of {INFERENCE_MODES} (single, "
            "aggregated, self-distilled); received "
            f"{inference!r}."
        )
    if inference == "sd" and not self_distillation:
        raise ValueError(
            "`inference='sd'` reads the self-distilled single classifier, "
            "which is only trained with `self_distillation=True`; pass it, "
            "or use inference 'si' or 'ag'."
        )
    return inference


class JointLabelTask(AuxiliaryTask):
    """A task whose joint classifiers predict (class, transformation).

    Subclasses return from `call` a dict with `"joint_logits"` `[B, S, K,
    N * K]` (S joint classifiers, K transformations of each input, joint
    label `y * K + j`; the last classifier is the one single inference
    reads, and map j = 0 of every classifier is the untransformed input)
    and `"classifier_logits"` (the host's single classifier, the student of
    self-distillation), set `num_transforms` and `classifier_weights`
    (the loss weight of each joint classifier), and implement
    `si_logits(trace)` (SI inference without the transformations) and
    `si_head_weights()` (the plain head that export writes).

    Loss: `sum_s w_s * mean_j CE(joint_s(x_j), y * K + j)`, plus, with
    `self_distillation`, `T^2 * KL(softmax(agg / T) || softmax(single /
    T))` with the aggregated logits `agg` detached (Hinton et al. 2015, as
    SLA and SFE use it). The single classifier's own cross-entropy is the
    host's supervised loss.

    Args:
        self_distillation: bool. Add the KL term.
        temperature: float. T of the KL term.
        weight: float. Weight of the task's loss in the total.
        **kwargs: base layer arguments.
    """

    num_transforms = None
    classifier_weights = (1.0,)

    def __init__(
        self, self_distillation=False, temperature=1.0, weight=1.0, **kwargs
    ):
        super().__init__(weight=weight, **kwargs)
        if temperature <= 0:
            raise ValueError(
                f"`temperature` must be positive; received {temperature}."
            )
        self.self_distillation = self_distillation
        self.temperature = temperature
        self.loss_tracker = keras.metrics.Mean(f"{self.name}_loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(
            f"{self.name}_si_accuracy"
        )

    def single_logits(self, outputs):
        """SI: the N logits of map 0 (untransformed) at transformation 0,
        last joint classifier: `[B, N]`."""
        return conditional_logits(
            outputs["joint_logits"][:, -1], self.num_transforms
        )[:, 0]

    def si_logits(self, trace):
        """SI from an unexpanded trace (the originals only): the same
        logits as `single_logits`, without computing any transformation."""
        raise NotImplementedError

    def aggregated_logits(self, outputs):
        """AG: conditional logits averaged over all maps of all joint
        classifiers (the paper's Eq. 8, 2K terms for two classifiers)."""
        joint = outputs["joint_logits"]
        num_classifiers = len(self.classifier_weights)
        conditional = [
            conditional_logits(joint[:, index], self.num_transforms)
            for index in range(num_classifiers)
        ]
        return ops.mean(ops.concatenate(conditional, axis=1), axis=1)

    def compute_task_loss(self, outputs, labels):
        joint = outputs["joint_logits"]
        loss = 0.0
        for index, weight in enumerate(self.classifier_weights):
            loss = loss + weight * joint_cross_entropy(joint[:, index], labels)
        if self.self_distillation:
            loss = loss + self_distillation_loss(
                self.aggregated_logits(outputs),
                outputs["classifier_logits"],
                self.temperature,
            )
        return loss

    def update_task_metrics(self, outputs, labels):
        self.loss_tracker.update_state(self.compute_task_loss(outputs, labels))
        self.accuracy.update_state(labels, self.single_logits(outputs))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "self_distillation": self.self_distillation,
                "temperature": self.temperature,
            }
        )
        return config


class JointLabelMethod(Supervised):
    """Base of the methods whose joint classifier also predicts the class.

    The model holds one joint-label task (`self.auxiliary_tasks[0]`, with
    `single_logits`, `aggregated_logits` and `si_head_weights`) and the
    `Supervised` classifier, whose head is the self-distillation (SD)
    single classifier. `call` in inference returns the logits of the
    `inference` mode, so `predict` and `evaluate` honour it; both also take
    `inference=` for one call.

    Without self-distillation the paper's model has no single classifier:
    the joint losses alone train the network and the single head is frozen
    (left out of the loss, not out of the model, so that every model has
    one structure).
    """

    def __init__(
        self,
        backbone,
        num_classes,
        task,
        inference="si",
        self_distillation=True,
        temperature=1.0,
        **kwargs,
    ):
        check_inference(inference, self_distillation)
        super().__init__(backbone, num_classes, auxiliary_tasks=[task], **kwargs)
        self.inference = inference
        self.self_distillation = self_distillation
        self.temperature = temperature
        if not self_distillation:
            # Outside the loss: frozen, so optimizers neither track nor warn.
            self.classifier.output_dense.trainable = False

    @property
    def task(self):
        return self.auxiliary_tasks[0]

    def call(self, images, training=None):
        if training or self.inference == "sd":
            return super().call(images, training=training)
        if self.preprocessor is not None:
            images = self.preprocessor(images)
        if self.inference == "si":
            trace = self.trace(images, training=False, expand_batch=False)
            return self.task.si_logits(trace)
        outputs = self.task(self.trace(images, training=False), training=False)
        return self.task.aggregated_logits(outputs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self.self_distillation or not isinstance(y_pred, dict):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        loss = scale_loss_for_replicas(
            self.task.weight * self.task.compute_task_loss(y_pred[self.task.name], y)
        )
        for extra in self.losses:  # Keras scales these itself
            loss = loss + self._aggregate_additional_loss(extra)
        return loss

    @contextlib.contextmanager
    def _inference_mode(self, inference):
        if inference is None or inference == self.inference:
            yield
            return
        check_inference(inference, self.self_distillation)
        previous = self.inference
        self.inference = inference
        # The compiled functions captured the previous mode.
        self.predict_function = self.test_function = None
        try:
            yield
        finally:
            self.inference = previous
            self.predict_function = self.test_function = None

    def predict(self, x, inference=None, **kwargs):
        """`keras.Model.predict`, with logits of the `inference` mode.

        Args:
            x: images (raw `[0, 255]` when the model has a preprocessor).
            inference: None (the model's mode), "si", "ag" or "sd".
            **kwargs: `keras.Model.predict` arguments.
        """
        with self._inference_mode(inference):
            return super().predict(x, **kwargs)

    def evaluate(self, x=None, y=None, inference=None, **kwargs):
        """`keras.Model.evaluate` in the `inference` mode (None: the model's)."""
        with self._inference_mode(inference):
            return super().evaluate(x, y, **kwargs)

    def export_classifier(self, preset_dir, inference=None):
        """Saves a plain classifier preset of the SI or SD prediction.

        "sd" saves the single classifier as it is; "si" saves the same
        backbone with a `Dense(num_classes)` head made of the joint
        classifier's columns of the untransformed input (rotation 0 or no
        channel dropped), so `ImageClassifier.from_preset` reproduces the
        SI logits. Aggregated inference needs all transformations and has
        no plain-classifier form.

        Args:
            preset_dir: str. Folder of the preset.
            inference: None (the model's mode), "si" or "sd".
        """
        inference = inference or self.inference
        check_inference(inference, self.self_distillation)
        if inference == "ag":
            raise ValueError(
                "Aggregated inference ('ag') averages over all "
                "transformations, which a plain classifier cannot do; export "
                "with `inference='si'` or 'sd'."
            )
        if inference == "sd":
            self.classifier.save_to_preset(preset_dir)
            return
        kernel, bias = self.task.si_head_weights()
        classifier = classifier_class_for(self.backbone)(
            self.backbone,
            self.num_classes,
            preprocessor=self.preprocessor,
            pooling=self.classifier.pooling,
            dropout=self.dropout,
        )
        classifier.output_dense.set_weights(
            [ops.convert_to_numpy(kernel), ops.convert_to_numpy(bias)]
        )
        classifier.save_to_preset(preset_dir)

    def get_config(self):
        config = super().get_config()
        del config["auxiliary_tasks"]
        config.update(
            {
                "inference": self.inference,
                "self_distillation": self.self_distillation,
                "temperature": self.temperature,
            }
        )
        return config
