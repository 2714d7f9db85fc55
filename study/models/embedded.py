"""The embedded backbone: a small timm ResNet that the project pretrains itself on the glyph source task.

``lpft_glyphnet`` is registered with timm, so ``timm.create_model("lpft_glyphnet")`` builds the architecture. The
``glyphnet`` backbone pretrains it once on every source glyph in every style (35 to 85 s on 2 cores, depending on
the CPU) and caches the weights under a hash of the recipe and the data, so later runs only load them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import timm
import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, ResNet
from tqdm.auto import tqdm

from study.cache import cache_root, cached, content_hash
from study.data.embedded import GlyphWorld, source_task
from study.data.transforms import TensorNormalize
from study.models.backbone import Backbone
from study.models.registry import register_backbone

_MEAN, _STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


# timm's register_model reads a module-level ``default_cfgs``: here, the input config of the glyph images.
default_cfgs = generate_default_cfgs({
    "lpft_glyphnet.untrained": {"input_size": (3, 32, 32), "mean": _MEAN, "std": _STD, "num_classes": 0,
                                "crop_pct": 1.0, "first_conv": "conv1", "classifier": "fc"},
})


@register_model
def lpft_glyphnet(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-10 with widths 16-128 for 32×32 inputs (0.3 M parameters, 128-d features)."""
    if pretrained:
        raise ValueError("lpft_glyphnet has no downloadable weights; use the 'glyphnet' backbone, which "
                         "pretrains and caches them")
    args = dict(block=BasicBlock, layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16)
    return build_model_with_cfg(ResNet, "lpft_glyphnet", pretrained, **dict(args, **kwargs))


@dataclass(frozen=True)
class PretrainRecipe:
    epochs: int = 10
    batch_size: int = 128
    max_lr: float = 0.2
    weight_decay: float = 5e-4
    seed: int = 0
    memory_format: str = "channels_last"  # part of the recipe: it changes the float rounding, so the weights


def pretrain(world: GlyphWorld, recipe: PretrainRecipe, cache_dir=None, progress: bool = True) -> dict:
    """Train ``lpft_glyphnet`` on the source task; returns its state dict (source head included)."""
    data = source_task(world, cache_dir)
    images, labels = data["images"], data["labels"]
    torch.manual_seed(recipe.seed)
    memory_format = getattr(torch, recipe.memory_format)
    model = timm.create_model("lpft_glyphnet", num_classes=world.source_classes).to(memory_format=memory_format)
    normalize = TensorNormalize(_MEAN, _STD)
    steps_per_epoch = len(labels) // recipe.batch_size
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.max_lr, momentum=0.9, nesterov=True,
                                weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.max_lr, pct_start=0.15,
                                                   total_steps=recipe.epochs * steps_per_epoch)
    model.train()
    bar = tqdm(total=recipe.epochs * steps_per_epoch, desc="pretraining glyphnet", disable=not progress)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(labels))
        for step in range(steps_per_epoch):
            batch = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            inputs = normalize(images[batch]).contiguous(memory_format=memory_format)
            loss = F.cross_entropy(model(inputs), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return model.state_dict()


@register_backbone("glyphnet")
def glyphnet(*, num_classes: int, cache_dir=None, progress: bool = False, **world_options) -> Backbone:
    """``lpft_glyphnet`` pretrained on the glyph source task (every style), with a fresh head."""
    world, recipe = GlyphWorld(**world_options), PretrainRecipe()
    fingerprint = content_hash("glyphnet", world.fingerprint(), asdict(recipe), timm.__version__)
    path = cache_root(cache_dir) / "backbones" / f"glyphnet-{fingerprint}.pt"
    state = cached(path, lambda: pretrain(world, recipe, cache_dir, progress))
    model = timm.create_model("lpft_glyphnet", num_classes=world.source_classes)
    model.load_state_dict(state)
    model.reset_classifier(num_classes)
    config = timm.data.resolve_model_data_config(model)
    return Backbone(name="glyphnet", model=model, transform=None,
                    normalize=TensorNormalize(config["mean"], config["std"]), fingerprint=fingerprint)
