"""The fidelity check of a supervised CIFAR ResNet preset: plain PyTorch.

Trains the architecture, optimiser, schedule, augmentation, epochs and data
of a `Supervised` + `ResNetBackbone.cifar` recipe with nothing but PyTorch
(`torch.optim.SGD` with its own L2 `weight_decay`, a per-step cosine
`LambdaLR`, PyTorch's default initialisation), on the same image folder, and
reports test accuracy per epoch. Our preset must land within about a point
of it.

    python scripts/reference_torch_cifar_resnet.py recipes/resnet20_cifar10.yaml \
        --output docs/preset_references/resnet20_cifar10_torch.json

Resumable: a checkpoint is written after every epoch next to the output.
Images are decoded once with PIL into memory; pad-4 + random crop + flip are
applied per batch on tensors (the same transforms as torchvision's
`RandomCrop(32, padding=4)` + `RandomHorizontalFlip`).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import yaml
from PIL import Image
from torch import nn
from torch.nn import functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    def __init__(self, in_channels, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:
            # Projection shortcut (option B), as ResNetBackbone's default.
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. 2016, section 4.2: 6n + 2 layers, 16/32/64 channels."""

    def __init__(self, depth=20, num_classes=10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2; got {depth}.")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        layers, in_channels = [], 16
        for channels, stride in ((16, 1), (32, 2), (64, 2)):
            for index in range(blocks):
                layers.append(
                    BasicBlock(in_channels, channels, stride if index == 0 else 1)
                )
                in_channels = channels
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def load_folder(root, split):
    """`root/<split>/<class>/*.jpg` as uint8 NCHW tensors and labels."""
    split_dir = os.path.join(root, split)
    classes = sorted(
        name for name in os.listdir(split_dir)
        if os.path.isdir(os.path.join(split_dir, name))
    )
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(split_dir, name)
        for file in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, file)) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(label)
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels), classes


def augment(images, generator):
    """Zero-pad 4, random 32x32 crop and random horizontal flip per image."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    tops = torch.randint(0, 9, (batch,), generator=generator)
    lefts = torch.randint(0, 9, (batch,), generator=generator)
    rows = (tops[:, None] + torch.arange(height))[:, None, :, None]
    cols = (lefts[:, None] + torch.arange(width))[:, None, None, :]
    crops = padded[
        torch.arange(batch)[:, None, None, None],
        torch.arange(3)[None, :, None, None],
        rows, cols,
    ]
    flip = torch.rand(batch, generator=generator) < 0.5
    crops[flip] = crops[flip].flip(-1)
    return crops


def normalise(images, mean, std):
    images = images.float() / 255.0
    return (images - mean[:, None, None]) / std[:, None, None]


def evaluate(model, images, labels, mean, std, batch_size=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(normalise(images[start:start + batch_size], mean, std))
            correct += (logits.argmax(1) == labels[start:start + batch_size]).sum().item()
    return correct / len(labels)


def check_recipe(recipe):
    if recipe["backbone"]["constructor"] != "ResNetBackbone.cifar":
        raise ValueError("This reference trains CIFAR ResNet recipes only.")
    if recipe["method"]["class"] != "Supervised":
        raise ValueError("This reference trains supervised recipes only.")
    optimizer = recipe["training"]["optimizer"]
    if optimizer["name"] != "sgd" or optimizer.get("weight_decay"):
        raise ValueError("This reference trains SGD recipes with l2_decay only.")
    if recipe["data"].get("augment") != "cifar":
        raise ValueError("This reference implements the 'cifar' augmentation.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--output", required=True, help="JSON report.")
    parser.add_argument("--dataset", default=None, help="Override the data path.")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    with open(args.recipe) as file:
        recipe = yaml.safe_load(file)
    check_recipe(recipe)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed = recipe.get("seed", 0) if args.seed is None else args.seed
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    training = recipe["training"]
    settings = training["optimizer"]
    root = args.dataset or recipe["data"]["dataset"]
    train_images, train_labels, _ = load_folder(root, recipe["data"].get("train_split", "train"))
    test_images, test_labels, _ = load_folder(root, recipe["data"].get("eval_split", "test"))
    stats = CIFAR10_MEAN, CIFAR10_STD
    if recipe["data"].get("normalization", "imagenet") == "imagenet":
        stats = IMAGENET_MEAN, IMAGENET_STD
    mean, std = (torch.tensor(s) for s in stats)

    model = CifarResNet(recipe["backbone"]["arguments"]["depth"], int(train_labels.max()) + 1)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings["learning_rate"],
        momentum=settings.get("momentum", 0.9),
        nesterov=settings.get("nesterov", True),
        weight_decay=settings.get("l2_decay", 0.0),
    )
    batch_size, epochs = training["batch_size"], training["epochs"]
    steps_per_epoch = math.ceil(len(train_labels) / batch_size)
    warmup = training.get("schedule", {}).get("warmup_epochs", 0) * steps_per_epoch
    total = epochs * steps_per_epoch

    def factor(step):
        if step < warmup:
            return step / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    checkpoint_path = args.output + ".checkpoint.pt"
    report = {"recipe": args.recipe, "seed": seed, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "epochs": []}
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        report = state["report"]
        print(f"Resuming after epoch {len(report['epochs'])}")
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(len(report["epochs"]), epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(train_labels), generator=generator)
        total_loss, correct = 0.0, 0
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            images = normalise(augment(train_images[index], generator), mean, std)
            logits = model(images)
            loss = loss_fn(logits, train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
            correct += (logits.argmax(1) == train_labels[index]).sum().item()
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, test_images, test_labels, mean, std)
        report["epochs"].append({
            "epoch": epoch + 1, "loss": total_loss / len(train_labels),
            "accuracy": correct / len(train_labels), "test_accuracy": accuracy,
            "epoch_seconds": round(seconds, 2),
        })
        print(json.dumps(report["epochs"][-1]), flush=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                    "rng": torch.get_rng_state(), "report": report}, checkpoint_path)
    report["test_accuracy"] = report["epochs"][-1]["test_accuracy"]
    report["train_seconds"] = round(sum(e["epoch_seconds"] for e in report["epochs"]), 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(report, file, indent=2)
    print(f"test accuracy {report['test_accuracy']:.4f} after {epochs} epochs, "
          f"{report['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
