"""SLA: self-supervised label augmentation with rotations (SFE's baseline).

Lee, Hwang and Shin, "Self-supervised Label Augmentation via Input
Transformations" (ICML 2020): every image is shown in its 4 rotations and
one joint classifier predicts (class, rotation).
"""

import keras
from keras import ops

from keras_ssl.methods.joint_label_method import JointLabelMethod
from keras_ssl.methods.joint_label_method import JointLabelTask
from keras_ssl.methods.joint_label_method import original_rows
from keras_ssl.methods.joint_label_method import rows_by_transform
from keras_ssl.ops.rotation import rotate_images

NUM_ROTATIONS = 4


@keras.saving.register_keras_serializable(package="keras_ssl")
class RotationLabelTask(JointLabelTask):
    """SLA's task: predict the class and the rotation (0, 90, 180, 270).

    The three rotated copies of the (preprocessed) batch are appended to it
    before the backbone (`expands_batch_after = "input"`), so the network
    runs once on 4B images and BatchNorm normalises originals and rotations
    together, as SLA trains. A joint classifier `Dense(num_classes * 4)` on
    the pooled features of all four predicts joint label `y * 4 + r`.
    Works with any backbone the host can trace (ResNets, ViT, CRATE);
    images must be square.

    Args:
        self_distillation: bool. Add the KL term training the host's single
            classifier on the aggregated prediction.
        temperature: float. T of the KL term.
        weight: float. Weight of the task's loss in the total.
        **kwargs: base layer arguments.
    """

    num_transforms = NUM_ROTATIONS
    expands_batch_after = "input"

    def __init__(self, self_distillation=False, name="sla", **kwargs):
        super().__init__(self_distillation=self_distillation, name=name, **kwargs)

    def attach(self, model):
        super().attach(model)
        height, width = model.backbone.image_shape[:2]
        if height is not None and height != width:
            raise ValueError(
                "SLA stacks the 4 rotations of each image in one batch, so "
                f"the images must be square; the backbone expects {height}x"
                f"{width}. Resize or crop to a square `image_shape`."
            )
        feature_dim = model.classifier.output_dense.kernel.shape[0]
        self.head = keras.layers.Dense(
            model.num_classes * NUM_ROTATIONS,
            dtype=self.dtype_policy,
            name="joint_head",
        )
        self.head.build((None, feature_dim))

    def expand_batch(self, images):
        return ops.concatenate(
            [rotate_images(images, turns) for turns in range(1, NUM_ROTATIONS)],
            axis=0,
        )

    def call(self, trace, training=None):
        features = rows_by_transform(trace["features"], NUM_ROTATIONS)
        return {
            "joint_logits": self.head(features)[:, None],  # rotation r at r
            "classifier_logits": original_rows(trace["logits"], NUM_ROTATIONS),
        }

    def si_logits(self, trace):
        return self.head(trace["features"])[:, ::NUM_ROTATIONS]

    def si_head_weights(self):
        """`(kernel [D, N], bias [N])`: the joint classifier's rotation-0
        columns, a plain head on the backbone's pooled output."""
        kernel = ops.convert_to_numpy(self.head.kernel)
        bias = ops.convert_to_numpy(self.head.bias)
        return kernel[:, ::NUM_ROTATIONS], bias[::NUM_ROTATIONS]


@keras.saving.register_keras_serializable(package="keras_ssl")
class SLA(JointLabelMethod):
    """Self-supervised label augmentation (SLA) with rotations.

    Lee et al., "Self-supervised Label Augmentation via Input
    Transformations" (ICML 2020), the baseline of SFE's Table 3. Each image
    is expanded into its rotations by 0, 90, 180 and 270 degrees; one joint
    classifier learns joint labels `y * 4 + r` with cross-entropy averaged
    over the 4B images. Optional self-distillation adds a single
    `Dense(num_classes)` classifier on the unrotated image's feature,
    trained with `CE(y) + T^2 * KL(agg || single)` (agg detached).

    Inference (`inference=`, honoured by `predict` and `evaluate`):
    "si" (single): the rotation-0 logits of the unrotated image; "ag"
    (aggregated): the conditional logits of each rotation `r` (column r of
    rotated image r) averaged over the 4 rotations; "sd": the
    self-distilled single classifier. The batch costs 4 forward passes.

    Args:
        backbone: a keras_ssl backbone (square images).
        num_classes: int.
        transforms: "rotation", the only transformation implemented (the
            SLA paper also studies colour permutations).
        inference: "si", "ag" or "sd".
        self_distillation: bool. Train the single classifier (needed for
            "sd").
        temperature: float. Distillation temperature (1 by default).
        **kwargs: `Supervised` arguments (`preprocessor`, `dropout`, ...).

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(
        depth=32, image_shape=(32, 32, 3)
    )
    model = keras_ssl.methods.SLA(backbone, num_classes=10, inference="ag")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(train_data, epochs=200)
    model.predict(images)  # aggregated over the 4 rotations
    ```
    """

    def __init__(
        self,
        backbone,
        num_classes,
        transforms="rotation",
        inference="si",
        self_distillation=False,
        temperature=1.0,
        **kwargs,
    ):
        if transforms != "rotation":
            raise ValueError(
                "`transforms` must be 'rotation' (0, 90, 180, 270 degrees); "
                f"received {transforms!r}."
            )
        task = RotationLabelTask(
            self_distillation=self_distillation, temperature=temperature
        )
        super().__init__(
            backbone,
            num_classes,
            task,
            inference=inference,
            self_distillation=self_distillation,
            temperature=temperature,
            **kwargs,
        )
        self.transforms = transforms

    def get_config(self):
        config = super().get_config()
        config["transforms"] = self.transforms
        return config
