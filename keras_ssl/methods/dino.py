"""DINO: self-distillation with no labels.

Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers". A student network (backbone + projection head) learns to
match, on every other crop of an image, the centred and sharpened output of
a teacher network that is an exponential moving average of the student. MST
(`keras_ssl.methods.mst`) builds on it; its appendix fixes the settings used
here.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from keras_ssl.distribute.replicas import scale_loss_for_replicas
from keras_ssl.methods.method_model import MethodModel
from keras_ssl.methods.supervised import classifier_class_for


@keras.saving.register_keras_serializable(package="keras_ssl")
class DINOHead(keras.layers.Layer):
    """DINO's projection head: MLP, L2-normalised bottleneck, weight-normed
    last layer.

    `num_layers` Dense layers (GELU between them, optional BatchNorm) map
    to a `bottleneck_dim` vector, which is L2-normalised; the last layer is
    a bias-free Linear to `out_dim` whose columns are normalised to unit
    length (weight normalisation with the gain fixed at 1, DINO's
    `norm_last_layer=True`).

    Args:
        out_dim: int. Number of prototypes (65536 on ImageNet).
        hidden_dim: int. Width of the hidden layers.
        bottleneck_dim: int. Width of the normalised bottleneck.
        num_layers: int >= 1. Dense layers before the bottleneck
            normalisation.
        use_bn: bool. BatchNorm after each hidden Dense layer.
        **kwargs: base layer arguments.
    """

    def __init__(self, out_dim=65536, hidden_dim=2048, bottleneck_dim=256,
                 num_layers=3, use_bn=False, **kwargs):
        super().__init__(**kwargs)
        self.out_dim = out_dim
        self.hidden_dim = hidden_dim
        self.bottleneck_dim = bottleneck_dim
        self.num_layers = num_layers
        self.use_bn = use_bn
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.mlp = []
        for i in range(num_layers):
            last = i == num_layers - 1
            self.mlp.append(keras.layers.Dense(
                bottleneck_dim if last else hidden_dim,
                kernel_initializer=init, dtype=self.dtype_policy,
                name=f"dense_{i}",
            ))
            if not last:
                if use_bn:
                    self.mlp.append(keras.layers.BatchNormalization(
                        epsilon=1e-5, momentum=0.9, dtype=self.dtype_policy,
                        name=f"batch_norm_{i}",
                    ))
                self.mlp.append(keras.layers.Activation(
                    "gelu", dtype=self.dtype_policy, name=f"gelu_{i}"
                ))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.mlp:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.last_kernel = self.add_weight(
            shape=(self.bottleneck_dim, self.out_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="last_kernel",
        )

    def call(self, features, training=None, last_layer_gate=None):
        """Logits `[B, out_dim]` of features `[B, D]`.

        `last_layer_gate` (a 0/1 scalar) scales the last layer's gradient:
        0 keeps it frozen (DINO's first epoch) without changing the output.
        """
        hidden = features
        for layer in self.mlp:
            hidden = layer(hidden, training=training)
        # Normalisations in float32: under float16 the squared norms of
        # 256-wide vectors overflow.
        hidden = ops.cast(hidden, "float32")
        hidden = hidden / ops.maximum(ops.norm(hidden, axis=-1, keepdims=True), 1e-12)
        kernel = ops.cast(self.last_kernel, "float32")
        if last_layer_gate is not None:
            frozen = ops.stop_gradient(kernel)
            gate = ops.cast(last_layer_gate, "float32")  # autocast to float16
            kernel = frozen + gate * (kernel - frozen)
        kernel = kernel / ops.maximum(ops.norm(kernel, axis=0, keepdims=True), 1e-12)
        return ops.matmul(hidden, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "out_dim": self.out_dim,
            "hidden_dim": self.hidden_dim,
            "bottleneck_dim": self.bottleneck_dim,
            "num_layers": self.num_layers,
            "use_bn": self.use_bn,
        })
        return config


def encode_tokens(backbone, images, token_mask=None, return_attention=False,
                  training=None):
    """Final tokens `[B, 1 + N, D]` of a transformer backbone (and the last
    block's attention `[B, H, 1 + N, 1 + N]` with `return_attention`).
    Images of any size divisible by the patch size go in."""
    tokens = backbone.embed(images, token_mask=token_mask, training=training)
    for block in backbone.blocks[:-1]:
        tokens = block(tokens, training=training)
    attention = None
    if return_attention:
        tokens, attention = backbone.blocks[-1](
            tokens, return_attention=True, training=training
        )
    else:
        tokens = backbone.blocks[-1](tokens, training=training)
    tokens = backbone.final_norm(tokens)
    return (tokens, attention) if return_attention else tokens


def dino_cross_entropy(student_logits, teacher_logits, center,
                       student_temperature, teacher_temperature):
    """DINO's loss: mean over (teacher global view i, student view j != i)
    of the cross-entropy between softmax((teacher - center) / T_t) and
    softmax(student / T_s), each averaged over the batch.

    Args:
        student_logits: `[num_views, B, K]`, global views first.
        teacher_logits: `[num_global, B, K]`.
        center: `[1, K]`.
    """
    student = ops.cast(student_logits, "float32") / student_temperature
    log_student = ops.log_softmax(student, axis=-1)
    teacher = (ops.cast(teacher_logits, "float32") - center) / teacher_temperature
    targets = ops.stop_gradient(ops.softmax(teacher, axis=-1))
    total, count = 0.0, 0
    for i in range(targets.shape[0]):
        for j in range(log_student.shape[0]):
            if i == j:
                continue
            total += ops.mean(ops.sum(-targets[i] * log_student[j], axis=-1))
            count += 1
    return total / count


def cosine_value(start, end, step, total_steps):
    """DINO's `cosine_scheduler` at `step` of `total_steps` (then `end`)."""
    progress = ops.minimum(step / ops.maximum(total_steps, 1.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + ops.cos(math.pi * progress))


def _check_fraction(value, name, low_open=True, example="0.1"):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"`{name}` must be a number; received {value!r}.")
    if not ((0 < value) if low_open else (0 <= value)) or value > 1:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(
            f"`{name}` must be in {interval}, e.g. {example}; received {value}."
        )


@keras.saving.register_keras_serializable(package="keras_ssl")
class DINO(MethodModel):
    """DINO: self-distillation of a momentum teacher with centring and
    sharpening.

    Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
    Transformers", as the MST paper (Li et al. 2021) uses it as its base.
    Each image comes as `num_global_crops` global crops at the backbone's
    resolution followed by any number of smaller local crops (all of one
    size, with interpolated position embeddings); build them with
    `keras_ssl.data.load_dataset(..., augment=keras_ssl.data.multi_crop(
    ..., colour=True))`. The teacher — a separate copy of backbone and head,
    never sharing a variable with the student — sees the global crops; its
    class-token output is centred and sharpened, and the student's output
    on every other crop is trained to match it (cross-entropy, averaged
    over the pairs).

    Training state moves in non-trainable variables, in `compute_loss`, on
    every backend: the teacher is updated to `m * teacher + (1 - m) *
    student` with the student's values of the step (before the optimizer
    applies its gradient), `m` following a cosine from `teacher_momentum`
    to `final_teacher_momentum` over training; the centre is an EMA of the
    teacher's mean output over the global batch (its variable averages the
    replicas' updates, so each replica contributes its shard). The teacher
    temperature rises linearly per epoch over
    `teacher_temperature_warmup_epochs`; the head's last layer gets no
    gradient during the first `freeze_last_layer_epochs`. `fit` sets these
    schedules' length from its `epochs` and `steps_per_epoch` (or the
    dataset's length); outside `fit` call `set_schedule`.

    DINO's weight decay schedule (0.04 -> 0.4, cosine) is
    `keras_ssl.optimizers.AdamWCosineWeightDecay`, and its gradient
    clipping (3.0 per parameter) is the optimizer's `clipnorm=3.0`.

    Args:
        backbone: a transformer backbone (`ViTBackbone`, `CRATEBackbone`).
        out_dim: int. Prototypes of the head (65536 on ImageNet; a few
            thousand suffice for CIFAR).
        head_hidden_dim: int. Hidden width of the head's MLP.
        bottleneck_dim: int. Width of the head's normalised bottleneck.
        head_layers: int. Dense layers of the head before the bottleneck.
        use_bn_in_head: bool. BatchNorm in the head's hidden layers.
        num_global_crops: int. Leading views of each batch that are global.
        student_temperature: float.
        teacher_temperature: float. Teacher temperature at epoch 0.
        final_teacher_temperature: float. After the warm-up.
        teacher_temperature_warmup_epochs: int.
        teacher_momentum: float. EMA momentum at the first step.
        final_teacher_momentum: float. EMA momentum at the end.
        center_momentum: float. EMA momentum of the centre.
        freeze_last_layer_epochs: int.
        preprocessor: "default" (the family's normalisation), None (views
            already preprocessed) or a layer applied to every view.
        **kwargs: base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ViTBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    model = keras_ssl.methods.DINO(backbone, out_dim=4096)
    model.compile(optimizer=keras.optimizers.AdamW(5e-4, clipnorm=3.0))
    crops = keras_ssl.data.multi_crop(32, 16, num_local=6, colour=True)
    data = keras_ssl.data.load_dataset("sample", batch_size=64, augment=crops)
    model.fit(data, epochs=10)
    features = model.backbone.predict(images)  # the pretrained student
    ```
    """

    def __init__(
        self,
        backbone,
        out_dim=65536,
        head_hidden_dim=2048,
        bottleneck_dim=256,
        head_layers=3,
        use_bn_in_head=False,
        num_global_crops=2,
        student_temperature=0.1,
        teacher_temperature=0.04,
        final_teacher_temperature=0.07,
        teacher_temperature_warmup_epochs=30,
        teacher_momentum=0.996,
        final_teacher_momentum=1.0,
        center_momentum=0.9,
        freeze_last_layer_epochs=1,
        preprocessor="default",
        **kwargs,
    ):
        self._check_arguments(
            backbone, out_dim, num_global_crops, student_temperature,
            teacher_temperature, final_teacher_temperature,
            teacher_momentum, final_teacher_momentum, center_momentum,
        )
        super().__init__(**kwargs)
        self.backbone = backbone
        self.out_dim = out_dim
        self.head_hidden_dim = head_hidden_dim
        self.bottleneck_dim = bottleneck_dim
        self.head_layers = head_layers
        self.use_bn_in_head = use_bn_in_head
        self.num_global_crops = num_global_crops
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.final_teacher_temperature = final_teacher_temperature
        self.teacher_temperature_warmup_epochs = teacher_temperature_warmup_epochs
        self.teacher_momentum = teacher_momentum
        self.final_teacher_momentum = final_teacher_momentum
        self.center_momentum = center_momentum
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self.preprocessor = self._resolve_preprocessor(preprocessor, backbone)
        self.prepare_backbone(backbone)

        head_args = dict(
            out_dim=out_dim, hidden_dim=head_hidden_dim,
            bottleneck_dim=bottleneck_dim, num_layers=head_layers,
            use_bn=use_bn_in_head,
        )
        self.head = DINOHead(**head_args, name="head")
        self.head.build((None, backbone.hidden_dim))
        # The teacher: fresh layers from the configs, then the student's
        # values copied through numpy, so no variable or buffer is shared
        # (an aliased buffer fails on JAX: "donate the same buffer twice").
        config = backbone.get_config()
        config["name"] = "teacher_" + backbone.name
        self.teacher_backbone = type(backbone).from_config(config)
        self.teacher_head = DINOHead(**head_args, name="teacher_head")
        self.teacher_head.build((None, backbone.hidden_dim))
        for teacher, student in self.teacher_pairs():
            teacher.assign(keras.ops.convert_to_numpy(student))
        self.teacher_backbone.trainable = False
        self.teacher_head.trainable = False

        # "mean" aggregation: under tf.distribute each replica's update is
        # averaged, i.e. the centre moves by the mean over the global batch.
        self.center = self.add_weight(
            shape=(1, out_dim), initializer="zeros", trainable=False,
            aggregation="mean", name="center",
        )
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="float32", trainable=False,
            name="step",
        )
        self.schedule_steps_per_epoch = self.add_weight(
            shape=(), initializer="ones", trainable=False,
            name="schedule_steps_per_epoch",
        )
        self.schedule_total_steps = self.add_weight(
            shape=(), initializer="ones", trainable=False,
            name="schedule_total_steps",
        )
        self.dino_loss_tracker = keras.metrics.Mean(name="dino_loss")

    @staticmethod
    def _check_arguments(backbone, out_dim, num_global_crops,
                         student_temperature, teacher_temperature,
                         final_teacher_temperature, teacher_momentum,
                         final_teacher_momentum, center_momentum):
        if not hasattr(backbone, "blocks") or not hasattr(backbone, "embed"):
            raise ValueError(
                "`backbone` must be a transformer with attention blocks "
                "(ViTBackbone or CRATEBackbone); received a "
                f"{type(backbone).__name__}."
            )
        if not isinstance(out_dim, int) or out_dim < 2:
            raise ValueError(f"`out_dim` must be an int >= 2; received {out_dim!r}.")
        if not isinstance(num_global_crops, int) or num_global_crops < 1:
            raise ValueError(
                "`num_global_crops` must be an int >= 1 (DINO uses 2); "
                f"received {num_global_crops!r}."
            )
        for name, value in (
            ("student_temperature", student_temperature),
            ("teacher_temperature", teacher_temperature),
            ("final_teacher_temperature", final_teacher_temperature),
        ):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"`{name}` must be > 0; received {value!r}.")
        for name, value in (
            ("teacher_momentum", teacher_momentum),
            ("final_teacher_momentum", final_teacher_momentum),
            ("center_momentum", center_momentum),
        ):
            _check_fraction(value, name, low_open=False, example="0.996")

    @staticmethod
    def _resolve_preprocessor(preprocessor, backbone):
        if isinstance(preprocessor, str):
            if preprocessor != "default":
                raise ValueError(
                    "`preprocessor` must be 'default', None or a layer; "
                    f"received '{preprocessor}'."
                )
            # Normalisation only, no resize: local crops keep their size.
            preprocessor_cls = classifier_class_for(backbone).preprocessor_cls
            return preprocessor_cls(
                preprocessor_cls.image_converter_cls(image_size=None)
            )
        return preprocessor

    def prepare_backbone(self, backbone):
        """Hook for subclasses, run before the teacher is copied."""

    def teacher_pairs(self):
        """`(teacher_variable, student_variable)` for every variable."""
        # Paired by path: a subclass may make the student's [MASK] token
        # trainable, which changes its place in the variable lists.
        teacher = {v.path: v for v in self.teacher_backbone.weights}
        pairs = [(teacher[v.path], v) for v in self.backbone.weights]
        pairs += list(zip(self.teacher_head.weights, self.head.weights))
        for t, s in pairs:
            if tuple(t.shape) != tuple(s.shape):
                raise RuntimeError(f"Teacher {t.path} does not match {s.path}.")
        return pairs

    # === Schedules ===

    def set_schedule(self, epochs, steps_per_epoch):
        """Sets the length of the momentum, temperature and freezing
        schedules (`fit` calls it)."""
        if steps_per_epoch is None or steps_per_epoch < 1:
            raise ValueError(
                "DINO's schedules need the number of steps per epoch: pass "
                "`steps_per_epoch` to `fit` (the dataset's length is "
                f"unknown or infinite); received {steps_per_epoch!r}."
            )
        self.schedule_steps_per_epoch.assign(float(steps_per_epoch))
        self.schedule_total_steps.assign(float(epochs * steps_per_epoch))

    def epoch_now(self):
        return ops.floor(self.step / self.schedule_steps_per_epoch)

    def momentum_now(self):
        return cosine_value(
            self.teacher_momentum, self.final_teacher_momentum,
            self.step, self.schedule_total_steps,
        )

    def teacher_temperature_now(self):
        warmup = self.teacher_temperature_warmup_epochs
        if warmup < 1:
            return ops.convert_to_tensor(self.final_teacher_temperature, "float32")
        # np.linspace(start, final, warmup)[epoch], then final (DINO).
        epoch = self.epoch_now()
        rise = (self.final_teacher_temperature - self.teacher_temperature)
        warm = self.teacher_temperature + rise * epoch / max(warmup - 1, 1)
        return ops.where(epoch < warmup, warm, self.final_teacher_temperature)

    def last_layer_gate(self):
        frozen_steps = self.freeze_last_layer_epochs * self.schedule_steps_per_epoch
        return ops.cast(self.step >= frozen_steps, "float32")

    # === Forward pass ===

    def split_views(self, views):
        if isinstance(views, dict) or not isinstance(views, (list, tuple)):
            raise ValueError(
                f"{type(self).__name__} takes a tuple of view batches (global "
                "crops first, then local crops), as `load_dataset(..., "
                "augment=keras_ssl.data.multi_crop(...))` yields; received "
                f"{type(views).__name__}."
            )
        views = list(views)
        num_global = self.num_global_crops
        if len(views) < max(num_global, 2):
            raise ValueError(
                f"Received {len(views)} view(s); {type(self).__name__} needs "
                f"the {num_global} global crops (`num_global_crops`) and at "
                "least 2 views in all."
            )
        global_shape = tuple(self.backbone.image_shape[:2])
        for index, view in enumerate(views):
            shape = tuple(view.shape[1:3])
            if index < num_global and shape != global_shape:
                raise ValueError(
                    f"Global crop {index} is {shape[0]}x{shape[1]} but the "
                    f"backbone takes {global_shape[0]}x{global_shape[1]}: the "
                    "first `num_global_crops` views must be at the backbone's "
                    "`image_shape` (multi_crop's `global_size`)."
                )
            if index >= num_global:
                if shape[0] > global_shape[0] or shape[1] > global_shape[1]:
                    raise ValueError(
                        f"Local crop {index} is {shape[0]}x{shape[1]}, larger "
                        f"than the global crops: `local_size` must not exceed "
                        "`global_size`."
                    )
                if shape != tuple(views[num_global].shape[1:3]):
                    raise ValueError("All local crops must have one size.")
        return views[:num_global], views[num_global:]

    def preprocess(self, images):
        images = ops.cast(images, self.compute_dtype)
        return images if self.preprocessor is None else self.preprocessor(images)

    def teacher_forward(self, global_images):
        """Teacher logits `[G * B, K]` (and last-block attention)."""
        tokens, attention = encode_tokens(
            self.teacher_backbone, global_images, return_attention=True,
            training=False,
        )
        logits = self.teacher_head(tokens[:, 0], training=False)
        return ops.stop_gradient(logits), ops.stop_gradient(attention)

    def global_token_mask(self, attention, training):
        """Mask `[G * B, N]` of the student's global views (none in DINO)."""
        return None

    def call(self, views, training=None):
        global_views, local_views = self.split_views(views)
        global_images = self.preprocess(ops.concatenate(global_views, axis=0))
        teacher_logits, attention = self.teacher_forward(global_images)
        token_mask = self.global_token_mask(attention, training)
        global_tokens = encode_tokens(
            self.backbone, global_images, token_mask=token_mask,
            training=training,
        )
        features = [global_tokens[:, 0]]
        if local_views:
            local_images = self.preprocess(ops.concatenate(local_views, axis=0))
            local_tokens = encode_tokens(
                self.backbone, local_images, training=training
            )
            features.append(local_tokens[:, 0])
        student_logits = self.head(
            ops.concatenate(features, axis=0), training=training,
            last_layer_gate=self.last_layer_gate(),
        )
        # View-major `[views, B, K]`: the views stack along the batch.
        outputs = {
            "student": ops.reshape(
                student_logits, (len(views), -1, self.out_dim)
            ),
            "teacher": ops.reshape(
                teacher_logits, (self.num_global_crops, -1, self.out_dim)
            ),
        }
        outputs.update(self.extra_outputs(global_images, global_tokens,
                                          token_mask, training))
        return outputs

    def extra_outputs(self, global_images, global_tokens, token_mask, training):
        """Further outputs of a subclass (MST's restored images)."""
        return {}

    # === Loss and state updates ===

    def dino_loss(self, y_pred):
        return dino_cross_entropy(
            y_pred["student"], y_pred["teacher"], self.center,
            self.student_temperature, self.teacher_temperature_now(),
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        # Labels in the data, if any, are ignored.
        dino_loss = self.dino_loss(y_pred)
        self.dino_loss_tracker.update_state(dino_loss)
        loss = self.total_loss(dino_loss, y_pred)
        if training:
            self.update_training_state(y_pred["teacher"])
        for penalty in self.losses:  # layer regularisers, if any
            loss = loss + ops.cast(penalty, "float32")
        return scale_loss_for_replicas(loss)

    def total_loss(self, dino_loss, y_pred):
        """The loss to minimise (a subclass adds its terms)."""
        return dino_loss

    def update_training_state(self, teacher_logits):
        """EMA of the teacher and of the centre, then the step count."""
        momentum = self.momentum_now()
        for teacher, student in self.teacher_pairs():
            student_value = ops.cast(ops.stop_gradient(student), teacher.dtype)
            m = ops.cast(momentum, teacher.dtype)
            teacher.assign(m * teacher + (1.0 - m) * student_value)
        batch_center = ops.mean(
            ops.reshape(ops.cast(teacher_logits, "float32"), (-1, self.out_dim)),
            axis=0, keepdims=True,
        )
        self.center.assign(
            self.center * self.center_momentum
            + ops.stop_gradient(batch_center) * (1.0 - self.center_momentum)
        )
        self.step.assign(self.step + 1.0)

    # === Keras plumbing ===

    def compile(self, optimizer="adamw", **kwargs):
        """Compiles without a Keras loss: the loss is the method's own.

        Args:
            optimizer: optimizer or its name; DINO's is AdamW with a cosine
                learning rate after a linear warm-up, weight decay 0.04 ->
                0.4 (`keras_ssl.optimizers.AdamWCosineWeightDecay`) and
                `clipnorm=3.0`.
            **kwargs: other `keras.Model.compile` arguments.
        """
        super().compile(optimizer=optimizer, **kwargs)

    def fit(self, x=None, y=None, epochs=1, steps_per_epoch=None, **kwargs):
        """`keras.Model.fit`, after sizing the schedules to this run."""
        steps = steps_per_epoch or _num_batches(x, kwargs.get("batch_size"))
        self.set_schedule(epochs, steps)
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself; Keras warns if asked to.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, epochs=epochs, steps_per_epoch=steps_per_epoch,
                           **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "out_dim": self.out_dim,
            "head_hidden_dim": self.head_hidden_dim,
            "bottleneck_dim": self.bottleneck_dim,
            "head_layers": self.head_layers,
            "use_bn_in_head": self.use_bn_in_head,
            "num_global_crops": self.num_global_crops,
            "student_temperature": self.student_temperature,
            "teacher_temperature": self.teacher_temperature,
            "final_teacher_temperature": self.final_teacher_temperature,
            "teacher_temperature_warmup_epochs":
                self.teacher_temperature_warmup_epochs,
            "teacher_momentum": self.teacher_momentum,
            "final_teacher_momentum": self.final_teacher_momentum,
            "center_momentum": self.center_momentum,
            "freeze_last_layer_epochs": self.freeze_last_layer_epochs,
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(
                config["preprocessor"]
            )
        return cls(**config)


def _num_batches(x, batch_size):
    """Batches per epoch of `fit`'s `x`, or None if unknown."""
    if isinstance(x, tf.data.Dataset):
        count = int(x.cardinality())
        return count if count > 0 else None
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        return math.ceil(len(x[0]) / (batch_size or 32))
    if hasattr(x, "__len__"):
        return len(x)
    return None

