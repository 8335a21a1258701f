"""SFE: self-supervised feature enhancement by dropping channel groups.

Yang, Ding, Cheng, Wang and Liu, "Self-supervised Feature Enhancement:
Applying Internal Pretext Task to Supervised Learning". The internal pretext
task: a stage's channels are split into k groups, transformation j drops
group j, and joint classifiers predict (class, which group was dropped).
"""

import keras
import numpy as np
from keras import ops

from keras_ssl.methods.auxiliary_task import resolve_layer_index
from keras_ssl.methods.joint_label_method import JointLabelMethod
from keras_ssl.methods.joint_label_method import JointLabelTask
from keras_ssl.methods.joint_label_method import original_rows
from keras_ssl.methods.joint_label_method import rows_by_transform
from keras_ssl.ops.channel_groups import channel_drop_masks


@keras.saving.register_keras_serializable(package="keras_ssl")
class DroppedChannelsTask(JointLabelTask):
    """SFE's task: predict the class and the dropped channel group.

    At each stage of `transform_stages`, the channels are permuted once at
    random (from `seed`; stored in a non-trainable variable, so it survives
    save/load) and split into k = `num_transforms` - 1 groups; map j (1..k)
    is the stage output with group j zeroed, map 0 the original. A joint
    classifier (global average pooling, `Dense(num_classes *
    num_transforms)`) follows each transformed stage; joint label `y * K +
    j`.

    Because a per-channel mask commutes with global average pooling, the
    two-classifier structure pools each stage output once and masks the
    pooled vector K ways: no K feature maps are materialised (the paper
    concatenates them), so the extra cost is K small matrix products.

    With `propagate=True` (the paper's Table 6 single-classifier setting),
    the transform follows one earlier stage and the k dropped-group maps
    travel through the remaining stages to one joint classifier on the last
    stage. The host appends the k maps to the batch at that stage
    (`expands_batch_after`), so the later stages run once on (1 + k)B maps
    and BatchNorm normalises them together, as the paper concatenates them.

    Loss weights: `beta` on every joint classifier but the last, 1 on the
    last (the paper's text and Figure 4 put the small weight on the
    penultimate classifier; its Eq. 6 prints it on the last).

    Args:
        num_transforms: int. K, the original plus k = K - 1 dropped groups.
            9 in the paper.
        beta: float. Loss weight of the earlier joint classifiers.
        transform_stages: tuple of ints. Stages (negative: from the end)
            whose outputs are transformed; `(-2, -1)` is the two-classifier
            structure.
        propagate: bool. Transform after the single stage of
            `transform_stages` and run the maps through the later stages.
        equal_groups: bool. Require k to divide each transformed stage's
            channel count (the paper's equal groups); False splits as the
            paper's Listing 1 does (group sizes differ by at most one).
        self_distillation: bool. Add the KL term training the host's single
            classifier on the aggregated prediction.
        temperature: float. T of the KL term.
        seed: int or None. Seed of the channel permutations.
        weight: float. Weight of the task's loss in the total.
        **kwargs: base layer arguments.
    """

    def __init__(
        self,
        num_transforms=9,
        beta=0.5,
        transform_stages=(-2, -1),
        propagate=False,
        equal_groups=True,
        self_distillation=True,
        temperature=1.0,
        seed=None,
        weight=1.0,
        name="sfe",
        **kwargs,
    ):
        super().__init__(
            self_distillation=self_distillation,
            temperature=temperature,
            weight=weight,
            name=name,
            **kwargs,
        )
        if not isinstance(num_transforms, int) or num_transforms < 2:
            raise ValueError(
                "`num_transforms` (K, the original plus the dropped-group "
                f"maps) must be an int >= 2; received {num_transforms}."
            )
        transform_stages = tuple(transform_stages)
        if not transform_stages:
            raise ValueError("`transform_stages` must name at least one stage.")
        if propagate and len(transform_stages) != 1:
            raise ValueError(
                "`propagate=True` transforms after one stage and runs the "
                "maps through the rest to a single joint classifier; pass "
                f"one stage in `transform_stages`, not {transform_stages}."
            )
        self.num_transforms = num_transforms
        self.beta = beta
        self.transform_stages = transform_stages
        self.propagate = propagate
        self.equal_groups = equal_groups
        self.seed = seed

    def attach(self, model):
        super().attach(model)
        backbone = model.backbone
        if not all(
            hasattr(backbone, attribute)
            for attribute in ("stem", "stages", "stage_output_channels")
        ):
            raise ValueError(
                "SFE transforms stage feature maps, so it needs a backbone "
                "exposing `stem`, `stages` and `stage_output_channels` (e.g. "
                f"ResNetBackbone); received {type(backbone).__name__}."
            )
        num_stages = len(backbone.stages)
        stages = [
            resolve_layer_index(stage, num_stages, "transform_stages")
            for stage in self.transform_stages
        ]
        if len(set(stages)) != len(stages):
            raise ValueError(
                f"`transform_stages`={self.transform_stages} names a stage "
                "twice."
            )
        self.stages = sorted(stages)
        num_groups = self.num_transforms - 1
        rng = np.random.default_rng(
            self.seed if self.seed is not None else np.random.randint(2**31)
        )
        self.permutations = []
        for stage in self.stages:
            channels = backbone.stage_output_channels[stage]
            if num_groups > channels or (
                self.equal_groups and channels % num_groups
            ):
                raise ValueError(
                    f"Stage {stage} has {channels} channels, which "
                    f"`num_transforms`={self.num_transforms} cannot split into "
                    f"{num_groups} equal groups (K - 1 must divide the "
                    "channel count). Choose K - 1 among the divisors of "
                    f"{channels}, or pass `equal_groups=False`."
                )
            permutation = self.add_weight(
                shape=(channels,),
                dtype="int32",
                initializer="zeros",
                trainable=False,
                name=f"stage{stage + 1}_permutation",
            )
            permutation.assign(rng.permutation(channels).astype("int32"))
            self.permutations.append(permutation)
        head_stages = [num_stages - 1] if self.propagate else self.stages
        self.heads = []
        for stage in head_stages:
            head = keras.layers.Dense(
                model.num_classes * self.num_transforms,
                dtype=self.dtype_policy,
                name=f"stage{stage + 1}_joint_head",
            )
            head.build((None, backbone.stage_output_channels[stage]))
            self.heads.append(head)
        self.classifier_weights = (self.beta,) * (len(self.heads) - 1) + (1.0,)
        self.last_stage = num_stages - 1
        if self.propagate and self.stages[0] != self.last_stage:
            self.expands_batch_after = self.stages[0]

    def masks(self, index, dtype):
        """`[K, C]` channel masks of the `index`-th transformed stage."""
        return channel_drop_masks(
            self.permutations[index], self.num_transforms - 1, dtype
        )

    def call(self, trace, training=None):
        stage_outputs = trace["stage_outputs"]
        if self.expands_batch_after is not None:
            pooled = ops.mean(stage_outputs[-1], axis=(1, 2))
            joint = [self.heads[0](rows_by_transform(pooled, self.num_transforms))]
            classifier_logits = original_rows(trace["logits"], self.num_transforms)
        else:
            joint = []
            for index, (stage, head) in enumerate(zip(self.stages, self.heads)):
                pooled = ops.mean(stage_outputs[stage], axis=(1, 2))
                masks = self.masks(index, pooled.dtype)
                joint.append(head(pooled[:, None, :] * masks[None]))
            classifier_logits = trace["logits"]
        return {
            "joint_logits": ops.stack(joint, axis=1),
            "classifier_logits": classifier_logits,
        }

    def expand_batch(self, features):
        masks = self.masks(0, features.dtype)[1:]  # the k dropped-group maps
        maps = masks[:, None, None, None, :] * features[None]
        return ops.reshape(maps, (-1, *ops.shape(features)[1:]))

    def si_logits(self, trace):
        stage = self.last_stage if self.propagate else self.stages[-1]
        pooled = ops.mean(trace["stage_outputs"][stage], axis=(1, 2))
        return self.heads[-1](pooled)[:, :: self.num_transforms]

    def si_head_weights(self):
        """`(kernel [C, N], bias [N])`: the last joint classifier's columns
        of the untransformed map, a plain head on the backbone's output."""
        model = self.host_model()
        if not self.propagate and self.stages[-1] != self.last_stage:
            raise ValueError(
                "The last joint classifier reads stage "
                f"{self.stages[-1]}, not the backbone's output, so SI has no "
                "plain-classifier form; include -1 in `transform_stages`."
            )
        if model.classifier.pooling != "avg":
            raise ValueError(
                "The joint classifiers read average-pooled features, so the "
                "SI classifier needs a host built with `pooling='avg'`; this "
                f"one has '{model.classifier.pooling}'."
            )
        head = self.heads[-1]
        kernel = ops.convert_to_numpy(head.kernel)
        bias = ops.convert_to_numpy(head.bias)
        return kernel[:, :: self.num_transforms], bias[:: self.num_transforms]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_transforms": self.num_transforms,
                "beta": self.beta,
                "transform_stages": list(self.transform_stages),
                "propagate": self.propagate,
                "equal_groups": self.equal_groups,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class SFE(JointLabelMethod):
    """Self-supervised feature enhancement (SFE) of supervised training.

    Yang et al., "Self-supervised Feature Enhancement: Applying Internal
    Pretext Task to Supervised Learning". The channels of the last two
    stage outputs are split into K - 1 random groups; each joint classifier
    learns (class, dropped group) on all K = 9 versions of its stage's
    feature (see `DroppedChannelsTask` for how we avoid materialising
    them). Loss: `beta * L_penultimate + L_last`, each the mean over the K
    maps of the joint cross-entropy, plus (self-distillation) the single
    classifier's `CE(y) + T^2 * KL(agg || single)`.

    Inference (`inference=`, honoured by `predict` and `evaluate`):
    - "si": softmax over the N logits of map 0, transformation 0, of the
      last joint classifier (the paper's Eq. 7);
    - "ag": conditional logits `mu_{y j}^T f_j` averaged over the K maps of
      both classifiers (2K), then softmax (Eq. 8);
    - "sd": the single `Dense(num_classes)` classifier on the last stage's
      pooled feature, trained by self-distillation (Appendix C).
    `export_classifier(folder, inference="si" | "sd")` writes a plain
    `ResNetImageClassifier` preset giving the same logits.

    Choices the paper leaves open, each an argument: one fixed seeded
    permutation per stage (Listing 1 draws one at construction); joint
    label layout `y * K + j`; beta on the penultimate classifier; logits
    (not probabilities) averaged for AG, as in Eq. 8; when
    `self_distillation=False` the single classifier is not trained (the
    paper's model without SD has none).

    Args:
        backbone: a backbone exposing `stem`, `stages` and
            `stage_output_channels` (`ResNetBackbone`, CIFAR or ImageNet).
        num_classes: int.
        num_transforms: int. K = 9 in the paper (K - 1 dropped groups).
        beta: float. Weight of the penultimate classifier's loss; Appendix
            A: 0.5 for CIFAR ResNet-110/164 (the default), 1.0 for
            ResNet-18, 0.1 for Wide ResNet, PyramidNet and DenseNet.
        transform_stages: tuple of ints. Stages followed by a joint
            classifier; `(-2, -1)` is the paper's two-classifier structure,
            `(-1,)` a single classifier, `(0, 1, 2)` three (Table 7).
        propagate: bool. The Table 6 setting: transform after the one
            stage in `transform_stages` and run the K maps through the
            remaining stages to a joint classifier on the last stage.
        equal_groups: bool. Require K - 1 to divide the channel counts.
        inference: "si", "ag" or "sd".
        self_distillation: bool. Train the single classifier by
            self-distillation (needed for "sd").
        temperature: float. Distillation temperature (1 by default).
        seed: int or None. Seed of the channel permutations.
        **kwargs: `Supervised` arguments (`preprocessor`, `dropout`, ...).

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(
        depth=110, image_shape=(32, 32, 3)
    )
    model = keras_ssl.methods.SFE(backbone, num_classes=100, beta=0.5)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4)
    )
    model.fit(keras_ssl.data.load_dataset("cifar100", augment="cifar",
                                          batch_size=128), epochs=300)
    model.predict(images, inference="ag")
    model.export_classifier("sfe_resnet110", inference="si")
    ```
    """

    def __init__(
        self,
        backbone,
        num_classes,
        num_transforms=9,
        beta=0.5,
        transform_stages=(-2, -1),
        propagate=False,
        equal_groups=True,
        inference="si",
        self_distillation=True,
        temperature=1.0,
        seed=None,
        **kwargs,
    ):
        task = DroppedChannelsTask(
            num_transforms=num_transforms,
            beta=beta,
            transform_stages=transform_stages,
            propagate=propagate,
            equal_groups=equal_groups,
            self_distillation=self_distillation,
            temperature=temperature,
            seed=seed,
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
        self.num_transforms = num_transforms
        self.beta = beta
        self.transform_stages = tuple(transform_stages)
        self.propagate = propagate
        self.equal_groups = equal_groups
        self.seed = seed

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_transforms": self.num_transforms,
                "beta": self.beta,
                "transform_stages": list(self.transform_stages),
                "propagate": self.propagate,
                "equal_groups": self.equal_groups,
                "seed": self.seed,
            }
        )
        return config
