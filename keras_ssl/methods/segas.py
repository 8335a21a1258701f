"""SegAS: class-semantic guided attention shift on MoCo v2.

Bai, Xi, Zhao, Liu and Zhao 2024, "Attention Shifting to Pursue Optimal
Representation for Adapting Multi-granularity Tasks" (IJCAI). MoCo v2
(`keras_ssl.methods.moco`) plus hierarchical prototypes from k-means of a
memory bank of key embeddings, a calibrated prototype-distribution
consistency loss (ProCR), an attention-part filtered third view (ApFS) and
a diversity loss.
"""

import time

import keras
from keras import ops

from keras_ssl.distribute.replicas import gather_replicas
from keras_ssl.distribute.replicas import scale_loss_for_replicas
from keras_ssl.methods.moco import MoCoV2
from keras_ssl.ops.attention_filter import attention_heatmap
from keras_ssl.ops.attention_filter import filter_views
from keras_ssl.ops.contrastive import enqueue
from keras_ssl.ops.prototypes import NEGATIVE_RULES
from keras_ssl.ops.prototypes import calibrated_target
from keras_ssl.ops.prototypes import confidence
from keras_ssl.ops.prototypes import diversity_loss
from keras_ssl.ops.prototypes import hierarchical_kmeans
from keras_ssl.ops.prototypes import hierarchy_labels
from keras_ssl.ops.prototypes import kl_divergence


class PrototypeClustering(keras.callbacks.Callback):
    """Re-clusters SegAS's memory bank every `cluster_every` epochs.

    Runs at the start of an epoch (when Keras has synced the variables on
    every backend), on the host, once the bank holds at least M_1 keys.
    """

    def __init__(self, model):
        super().__init__()
        self.segas = model

    def on_epoch_begin(self, epoch, logs=None):
        if epoch % self.segas.cluster_every == 0:
            self.segas.update_prototypes(seed=epoch)


@keras.saving.register_keras_serializable(package="keras_ssl")
class SegAS(MoCoV2):
    """SegAS: MoCo v2 + hierarchical ProCR + attention-part filtering.

    Bai et al. 2024, "Attention Shifting to Pursue Optimal Representation
    for Adapting Multi-granularity Tasks". Per image three views: x^k (weak:
    crop + flip) through the key encoder, x^{q1} (MoCo v2's augmentation)
    and x^{q2}, x^{q1} with its most attended part filtered out, through the
    query encoder. The loss (Eq. 13) is

        L_I + alpha L^1_HProCR + beta L^2_HProCR + lambda L_diver

    - L_I: MoCo v2's InfoNCE of z^{q1} against z^k and the queue.
    - Prototypes: a FIFO memory bank of the last `memory_size` key
      embeddings (size it to the training set: after one epoch it holds the
      key of every image) is clustered bottom-up every `cluster_every`
      epochs (`keras_ssl.ops.hierarchical_kmeans`, faiss): level 1 into
      M_1 clusters, level l + 1 clusters the level-l centroids. Until the
      first clustering (the end of epoch 1) only L_I trains.
    - ProCR (Eqs. 2-9): target p^k = softmax(S_re(z^k, C) / tau_k), with
      similarities below mu_s set to -1 (`negative_rule`), calibrated by
      rho = max(p)(1 - H(p)/log M): the one-hot cluster y if rho <
      `confidence_threshold`, else rho p + (1 - rho) y; prediction p^{qj} =
      softmax(S(z^{qj}, C) / tau_t); L^j = KL(p^k || p^{qj}) with p^k a
      stop-gradient target, averaged over the levels (Eq. 5).
    - ApFS (Eqs. 10-11): heatmap A = channel sum of the query encoder's last
      feature map of x^{q1} (no gradient), min-max normalised and upsampled;
      x_A = (1 - sigmoid(omega (A - sigma))) x; with probability 1/2 a random
      rectangle of the same area is erased instead. Image i is filtered
      with probability rho_i of p^{q1}; otherwise x^{q2} = x^{q1}.
    - Diversity (Eq. 12): max(0, p^{q2}(c) - p^{q1}(c) + m) + z^{q1} . z^{q2},
      c = argmax p^{q1}.

    Our readings where the paper is silent or ambiguous: y is the sample's
    cluster at the last clustering, looked up as the level-1 prototype
    nearest to z^k and its ancestors (a FIFO bank needs no sample ids);
    rho for the hardness-adaptive rate and the diversity hinge are averaged
    over the levels; images are filtered after preprocessing, so a filtered
    pixel becomes the dataset mean; tau_k, tau_t, the threshold, omega,
    sigma and m are not given in the paper, and our defaults are stated
    below. `use_apfs=False` is the paper's "w/o ApFS" row (L_I + alpha
    L^1): no third view.

    `fit` takes batches `(x^k, x^{q1})` of raw `[0, 255]` images, labels
    ignored: `load_dataset(..., augment=keras_ssl.data.SegASViews(size))`.
    `fit` adds the clustering callback itself.

    Args:
        backbone: a keras_ssl backbone whose output is its last
            convolutional feature map `[B, h, w, C]` (a ResNet).
        num_prototypes: decreasing ints (M_1, ..., M_L). Defaults to
            (1000, 100, 10), our CIFAR-10 scaling of the paper's ImageNet
            (30000, 10000, 1000).
        memory_size: int, the bank size (the number of training images;
            CIFAR-10's 50000 by default). At least M_1.
        cluster_every: int, epochs between clusterings. Defaults to 1.
        alpha: float, the weight of L^1_HProCR. Defaults to 0.5.
        beta: float, the weight of L^2_HProCR. Defaults to 0.5.
        diversity_weight: float, lambda. Defaults to 0.1.
        target_temperature: float, tau_k. Defaults to 0.1 (ours).
        prediction_temperature: float, tau_t. Defaults to 0.2 (the
            paper's "tau was always set to 0.2").
        confidence_threshold: float, tau of Eq. 9. Defaults to 0.5 (ours).
        negative_rule: "sample_mean", "batch_max_mean" or None (see
            `keras_ssl.ops.suppress_negatives`).
        filter_scale: float, omega. Defaults to 100 (ours: the paper asks
            for T(A) ~ 0 above sigma and ~ 1 below).
        filter_threshold: float, sigma. Defaults to 0.5.
        random_filter_probability: float. Defaults to 0.5 (equiprobable).
        margin: float, m. Defaults to 0.1 (ours).
        use_apfs: bool. False drops x^{q2}, L^2 and L_diver.
        kmeans_iterations: int, Lloyd steps per clustering level.
        **kwargs: `MoCoV2` arguments (`projection_dim`, `hidden_dim`,
            `queue_size`, `temperature`, `momentum`, `preprocessor`,
            `seed`) and base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(depth=20, image_shape=(32, 32, 3))
    model = keras_ssl.methods.SegAS(
        backbone, num_prototypes=(100, 10), memory_size=1500, queue_size=1024
    )
    model.compile(optimizer=keras.optimizers.SGD(0.06, momentum=0.9, weight_decay=1e-4))
    data = keras_ssl.data.load_dataset(
        "sample", batch_size=64, augment=keras_ssl.data.SegASViews(32, blur_probability=0.0)
    )
    model.fit(data, epochs=5)
    ```
    """

    def __init__(
        self,
        backbone,
        num_prototypes=(1000, 100, 10),
        memory_size=50000,
        cluster_every=1,
        alpha=0.5,
        beta=0.5,
        diversity_weight=0.1,
        target_temperature=0.1,
        prediction_temperature=0.2,
        confidence_threshold=0.5,
        negative_rule="sample_mean",
        filter_scale=100.0,
        filter_threshold=0.5,
        random_filter_probability=0.5,
        margin=0.1,
        use_apfs=True,
        kmeans_iterations=20,
        **kwargs,
    ):
        num_prototypes = [int(count) for count in num_prototypes]
        outputs = getattr(backbone, "outputs", None) or [None]
        if outputs[0] is None or len(outputs[0].shape) != 4:
            raise ValueError(
                "SegAS's attention-part filter reads the backbone's last "
                "convolutional feature map, so `backbone` must output "
                "[batch, height, width, channels] (e.g. a ResNetBackbone); "
                f"{type(backbone).__name__} outputs "
                f"{None if outputs[0] is None else tuple(outputs[0].shape)}."
            )
        if not num_prototypes or min(num_prototypes) < 2 or any(
            a <= b for a, b in zip(num_prototypes, num_prototypes[1:])
        ):
            raise ValueError(
                "`num_prototypes` must be decreasing counts (M_1, ..., M_L), "
                f"each at least 2, e.g. (1000, 100, 10); received {num_prototypes}."
            )
        if num_prototypes[0] > memory_size:
            raise ValueError(
                f"`num_prototypes` asks for {num_prototypes[0]} level-1 "
                f"prototypes but the memory bank holds {memory_size} "
                "samples: use fewer prototypes than samples, or a larger "
                "`memory_size` (the number of training images)."
            )
        if not isinstance(cluster_every, int) or cluster_every < 1:
            raise ValueError(
                f"`cluster_every` must be a positive int (epochs); received {cluster_every!r}."
            )
        super().__init__(backbone, **kwargs)
        self.num_prototypes = num_prototypes
        self.memory_size = int(memory_size)
        self.cluster_every = cluster_every
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.diversity_weight = float(diversity_weight)
        self.target_temperature = float(target_temperature)
        self.prediction_temperature = float(prediction_temperature)
        self.confidence_threshold = float(confidence_threshold)
        if negative_rule not in NEGATIVE_RULES:
            raise ValueError(
                f"`negative_rule` must be one of {NEGATIVE_RULES}; received "
                f"{negative_rule!r}."
            )
        self.negative_rule = negative_rule
        self.filter_scale = float(filter_scale)
        self.filter_threshold = float(filter_threshold)
        self.random_filter_probability = float(random_filter_probability)
        self.margin = float(margin)
        self.use_apfs = bool(use_apfs)
        self.kmeans_iterations = int(kmeans_iterations)

        state = dict(trainable=False, aggregation="only_first_replica")
        self.memory = self.add_weight(
            shape=(self.memory_size, self.projection_dim), initializer="zeros",
            name="memory", **state,
        )
        self.memory_pointer = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", name="memory_pointer",
            **state,
        )
        self.memory_count = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", name="memory_count",
            **state,
        )
        # 0 until the first clustering: the prototype losses are off.
        self.prototypes_ready = self.add_weight(
            shape=(), initializer="zeros", name="prototypes_ready", **state
        )
        self.prototypes = [
            self.add_weight(
                shape=(count, self.projection_dim), initializer="zeros",
                name=f"prototypes_{level + 1}", **state,
            )
            for level, count in enumerate(num_prototypes)
        ]
        self.parents = [
            self.add_weight(
                shape=(count,), initializer="zeros", dtype="int32",
                name=f"parents_{level + 1}", **state,
            )
            for level, count in enumerate(num_prototypes)
        ]
        self.clustering_seconds = []

    def update_prototypes(self, seed=0):
        """Clusters the memory bank into the hierarchical prototypes.

        Skipped (returns False) while the bank holds fewer than M_1 keys.
        """
        count = int(ops.convert_to_numpy(self.memory_count))
        if count < self.num_prototypes[0]:
            return False
        start = time.perf_counter()
        bank = ops.convert_to_numpy(self.memory)[:count]
        prototypes, parents, _ = hierarchical_kmeans(
            bank, self.num_prototypes, seed=seed, max_iter=self.kmeans_iterations
        )
        for variable, value in zip(self.prototypes, prototypes):
            variable.assign(value)
        for variable, value in zip(self.parents, parents):
            variable.assign(value)
        self.prototypes_ready.assign(1.0)
        self.clustering_seconds.append(time.perf_counter() - start)
        return True

    def prototype_targets(self, keys, prototypes):
        """The calibrated target p^k at each level (Eqs. 6-9), no gradient."""
        # Prototype maths (softmax, KL) in float32 under mixed precision.
        keys = ops.cast(keys, "float32")
        similarity = [ops.matmul(keys, ops.transpose(c)) for c in prototypes]
        parents = [p.value for p in self.parents]
        labels = hierarchy_labels(ops.argmax(similarity[0], axis=-1), parents)
        return [
            ops.stop_gradient(
                calibrated_target(
                    s, label, self.target_temperature,
                    self.confidence_threshold, self.negative_rule,
                )
            )
            for s, label in zip(similarity, labels)
        ]

    def predict_prototypes(self, queries, prototypes):
        """`(log p, p)` of p^{qj} = softmax(S(z^{qj}, C) / tau_t) per level."""
        queries = ops.cast(queries, "float32")
        logits = [
            ops.matmul(queries, ops.transpose(c)) / self.prediction_temperature
            for c in prototypes
        ]
        return [ops.log_softmax(x) for x in logits], [ops.softmax(x) for x in logits]

    def call(self, inputs, training=None):
        key_view, query_view = self.split_views(inputs)
        query_images = self.preprocess(query_view)
        feature_map = self.backbone(query_images, training=training)
        first = self.embed(feature_map, self.projector)
        keys = self.encode_keys(self.preprocess(key_view), training=training)
        logits = self.contrast(first, keys, training=training)

        # Copies: `update_prototypes` writes them in place between epochs.
        prototypes = [ops.stop_gradient(ops.copy(p.value)) for p in self.prototypes]
        targets = self.prototype_targets(keys, prototypes)
        first_log_p, first_p = self.predict_prototypes(first, prototypes)

        def hierarchical_procr(log_p):  # Eq. 5
            return ops.mean(
                ops.stack([kl_divergence(t, q) for t, q in zip(targets, log_p)])
            )

        loss = self.alpha * hierarchical_procr(first_log_p)
        if self.use_apfs:
            # rho of p^{q1} (Eq. 11); 0 before the first clustering.
            rate = ops.mean(ops.stack([confidence(p) for p in first_p]), axis=0)
            rate = ops.stop_gradient(rate * self.prototypes_ready)
            heatmap = attention_heatmap(feature_map, query_images.shape[1:3])
            filtered, _, _ = filter_views(
                query_images, heatmap, rate, self.filter_scale,
                self.filter_threshold, self.seed_generator,
                self.random_filter_probability,
            )
            second_map = self.backbone(filtered, training=training)
            second = self.embed(second_map, self.projector)
            second_log_p, second_p = self.predict_prototypes(second, prototypes)
            loss += self.beta * hierarchical_procr(second_log_p)
            loss += self.diversity_weight * diversity_loss(
                first_p, second_p, ops.cast(first, "float32"),
                ops.cast(second, "float32"), self.margin,
            )
        if training:
            self.remember(keys)
        # Returned, not `add_loss`-ed: under MirroredStrategy the replicas
        # share the model's `losses` list, so each would add both terms.
        return {"logits": logits, "prototype_loss": self.prototypes_ready * loss}

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(x, y, y_pred["logits"], None, training)
        prototype_loss = ops.cast(y_pred["prototype_loss"], loss.dtype)
        return loss + scale_loss_for_replicas(prototype_loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred["logits"])

    def remember(self, keys):
        """Writes the (global) batch's keys into the FIFO memory bank."""
        keys = gather_replicas(keys)
        if keys.shape[0] is not None and keys.shape[0] > self.memory_size:
            raise ValueError(
                f"`memory_size` ({self.memory_size}) must be at least the "
                f"global batch size ({keys.shape[0]})."
            )
        enqueue(self.memory, self.memory_pointer, keys)
        self.memory_count.assign(
            ops.minimum(self.memory_count + ops.shape(keys)[0], self.memory_size)
        )

    def fit(self, x=None, y=None, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if not any(isinstance(c, PrototypeClustering) for c in callbacks):
            callbacks.append(PrototypeClustering(self))
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_prototypes": list(self.num_prototypes),
                "memory_size": self.memory_size,
                "cluster_every": self.cluster_every,
                "alpha": self.alpha,
                "beta": self.beta,
                "diversity_weight": self.diversity_weight,
                "target_temperature": self.target_temperature,
                "prediction_temperature": self.prediction_temperature,
                "confidence_threshold": self.confidence_threshold,
                "negative_rule": self.negative_rule,
                "filter_scale": self.filter_scale,
                "filter_threshold": self.filter_threshold,
                "random_filter_probability": self.random_filter_probability,
                "margin": self.margin,
                "use_apfs": self.use_apfs,
                "kmeans_iterations": self.kmeans_iterations,
            }
        )
        return config
