"""Classic CNNs as sysdl_kernels.flops layer descriptions, for analytic cost tables.

``ZOO`` maps a name to ``(layers, input_shape)``; ``flops.analyze(*ZOO["vgg19"])`` (or
``network_costs("vgg19")``) gives the per-layer table. The torchvision networks mirror torchvision 0.29's definitions layer for layer,
with torchvision's module names ("features.0", "inception3a.branch2.1.conv", "layer2.0.downsample.0"),
so parameter counts and conv/linear FLOPs equal those of ``torchvision.models.NAME(weights=None)``
(tests/models/analysis/test_analyze.py checks this on every build):

    alexnet, vgg16, vgg19     conv + bias, ReLU, max-pool; adaptive avg-pool; 3 dense layers
    googlenet                 torchvision's GoogLeNet without the auxiliary classifiers
                              (aux_logits=False): conv (no bias) + BatchNorm + ReLU everywhere,
                              max-pools with ceil_mode; its Inception "5x5" branch is a 3x3 conv
                              (a known torchvision quirk, kept so the counts match)
    resnet50                  torchvision's ResNet-50 (v1.5: stride on the 3x3 of a bottleneck),
                              projection shortcuts (strided 1x1 conv + BatchNorm) where shapes change
    inception_naive           one Inception module as the GoogLeNet paper draws it, on a 256x32x32
    inception_reduced         input, with inception (3a)'s filter counts; "naive" has no 1x1
                              reductions or pool projection, "reduced" has them. Paper style:
                              convs with bias, each followed by a ReLU, a true 5x5 conv.

All take one 3x224x224 image except the two Inception modules. The Fashion-MNIST CNN lives with
its config (models/nets/fashion_cnn.py, ``FashionCNNConfig.layer_specs``); ``sysdl analyze`` adds it.

    python -m sysdl_kernels.cnn_zoo       # every network's totals
"""

from __future__ import annotations

from sysdl_kernels.flops import (AdaptiveAvgPool, BatchNorm, Concat, Conv, Dropout, Flatten, Linear,
                                 Pool, ReLU, Residual, Sequential)

IMAGE = (3, 224, 224)                 # ImageNet input (C, H, W)
INCEPTION_INPUT = (256, 32, 32)       # the Inception comparison's input (C, H, W)
NUM_CLASSES = 1000


def _indexed(layers: list) -> Sequential:
    """An nn.Sequential's children, named "0", "1", ... as torchvision names them."""
    return Sequential(tuple((str(i), layer) for i, layer in enumerate(layers)))


def _named(*pairs) -> Sequential:
    return Sequential(tuple(pairs))

# ---- AlexNet and VGG -------------------------------------------------------------------------


def alexnet() -> list:
    features = [Conv(64, 11, stride=4, padding=2), ReLU(), Pool("max", 3, 2),
                Conv(192, 5, padding=2), ReLU(), Pool("max", 3, 2),
                Conv(384, 3, padding=1), ReLU(), Conv(256, 3, padding=1), ReLU(),
                Conv(256, 3, padding=1), ReLU(), Pool("max", 3, 2)]
    classifier = [Dropout(), Linear(4096), ReLU(), Dropout(), Linear(4096), ReLU(), Linear(NUM_CLASSES)]
    return [("features", _indexed(features)), ("avgpool", AdaptiveAvgPool(6)), ("flatten", Flatten()),
            ("classifier", _indexed(classifier))]


VGG_CONFIGS = {  # output channels of each 3x3 conv; "M" a 2x2 max-pool (torchvision's cfgs "D", "E")
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def vgg(name: str) -> list:
    features = []
    for item in VGG_CONFIGS[name]:
        features += [Pool("max", 2, 2)] if item == "M" else [Conv(item, 3, padding=1), ReLU()]
    classifier = [Linear(4096), ReLU(), Dropout(), Linear(4096), ReLU(), Dropout(), Linear(NUM_CLASSES)]
    return [("features", _indexed(features)), ("avgpool", AdaptiveAvgPool(7)), ("flatten", Flatten()),
            ("classifier", _indexed(classifier))]

# ---- GoogLeNet -------------------------------------------------------------------------------


def _basic_conv(out_channels: int, kernel: int, **conv) -> Sequential:
    """torchvision's BasicConv2d: conv without bias, BatchNorm, ReLU."""
    return _named(("conv", Conv(out_channels, kernel, bias=False, **conv)), ("bn", BatchNorm()),
                  ("relu", ReLU()))


def _inception(ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) -> Concat:
    """torchvision's Inception block: four branches joined on channels."""
    return Concat((
        ("branch1", _basic_conv(ch1x1, 1)),
        ("branch2", _indexed([_basic_conv(ch3x3red, 1), _basic_conv(ch3x3, 3, padding=1)])),
        # torchvision uses a 3x3 conv here where the paper has 5x5 (kept: the counts must match).
        ("branch3", _indexed([_basic_conv(ch5x5red, 1), _basic_conv(ch5x5, 3, padding=1)])),
        ("branch4", _indexed([Pool("max", 3, 1, padding=1, ceil_mode=True), _basic_conv(pool_proj, 1)])),
    ))


GOOGLENET_INCEPTIONS = {  # (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), the paper's table 1
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet() -> list:
    """torchvision.models.googlenet(weights=None, aux_logits=False): the inference path."""
    inception = lambda key: (f"inception{key}", _inception(*GOOGLENET_INCEPTIONS[key]))  # noqa: E731
    return [("conv1", _basic_conv(64, 7, stride=2, padding=3)),
            ("maxpool1", Pool("max", 3, 2, ceil_mode=True)),
            ("conv2", _basic_conv(64, 1)), ("conv3", _basic_conv(192, 3, padding=1)),
            ("maxpool2", Pool("max", 3, 2, ceil_mode=True)),
            inception("3a"), inception("3b"), ("maxpool3", Pool("max", 3, 2, ceil_mode=True)),
            inception("4a"), inception("4b"), inception("4c"), inception("4d"), inception("4e"),
            ("maxpool4", Pool("max", 2, 2, ceil_mode=True)),
            inception("5a"), inception("5b"),
            ("avgpool", AdaptiveAvgPool(1)), ("flatten", Flatten()), ("dropout", Dropout(0.2)),
            ("fc", Linear(NUM_CLASSES))]

# ---- one Inception module, paper style: naive against 1x1 dimension reduction ---------------


def _conv_relu(name: str, out_channels: int, kernel: int) -> list:
    """A same-size conv with bias and its ReLU, as two named entries."""
    return [(name, Conv(out_channels, kernel, padding=kernel // 2)), (f"{name}.relu", ReLU())]


def inception_module(reduced: bool, counts=GOOGLENET_INCEPTIONS["3a"]) -> list:
    """The GoogLeNet paper's Inception module (its figure 2): (a) naive or (b) with 1x1 reductions."""
    ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = counts
    reduce = lambda name, channels: _conv_relu(name, channels, 1) if reduced else []  # noqa: E731
    pool = [("max", Pool("max", 3, 1, padding=1))] + reduce("proj", pool_proj)
    return [("inception", Concat((
        ("1x1", Sequential(tuple(_conv_relu("conv", ch1x1, 1)))),
        ("3x3", Sequential(tuple(reduce("reduce", ch3x3red) + _conv_relu("conv", ch3x3, 3)))),
        ("5x5", Sequential(tuple(reduce("reduce", ch5x5red) + _conv_relu("conv", ch5x5, 5)))),
        ("pool", Sequential(tuple(pool))),
    )))]

# ---- ResNet-50 -------------------------------------------------------------------------------


def _bottleneck(width: int, stride: int, project: bool) -> Residual:
    """torchvision's Bottleneck: 1x1 (width) -> 3x3 (width, stride) -> 1x1 (4 x width), + shortcut, ReLU."""
    body = (("conv1", Conv(width, 1, bias=False)), ("bn1", BatchNorm()), ("relu1", ReLU()),
            ("conv2", Conv(width, 3, stride=stride, padding=1, bias=False)), ("bn2", BatchNorm()),
            ("relu2", ReLU()),
            ("conv3", Conv(4 * width, 1, bias=False)), ("bn3", BatchNorm()))
    shortcut = (("downsample", _indexed([Conv(4 * width, 1, stride=stride, bias=False), BatchNorm()])),)
    return Residual(body, shortcut if project else None, after=(("relu", ReLU()),))


RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))   # (width, blocks, first stride)


def resnet50() -> list:
    layers = [("conv1", Conv(64, 7, stride=2, padding=3, bias=False)), ("bn1", BatchNorm()),
              ("relu", ReLU()), ("maxpool", Pool("max", 3, 2, padding=1))]
    for stage, (width, blocks, stride) in enumerate(RESNET50_STAGES, start=1):
        # The first block changes the channels (and, past stage 1, the size): it needs a projection.
        stage_blocks = [_bottleneck(width, stride if b == 0 else 1, project=b == 0) for b in range(blocks)]
        layers.append((f"layer{stage}", _indexed(stage_blocks)))
    return layers + [("avgpool", AdaptiveAvgPool(1)), ("flatten", Flatten()), ("fc", Linear(NUM_CLASSES))]


ZOO = {  # name -> (layers, input shape (C, H, W))
    "alexnet": (alexnet(), IMAGE),
    "vgg16": (vgg("vgg16"), IMAGE),
    "vgg19": (vgg("vgg19"), IMAGE),
    "googlenet": (googlenet(), IMAGE),
    "inception_naive": (inception_module(reduced=False), INCEPTION_INPUT),
    "inception_reduced": (inception_module(reduced=True), INCEPTION_INPUT),
    "resnet50": (resnet50(), IMAGE),
}


def network_costs(name: str) -> list:
    """The per-layer ``flops.LayerCost`` rows of the zoo network ``name`` on its own input."""
    from sysdl_kernels.flops import analyze
    if name not in ZOO:
        raise ValueError(f"unknown network {name!r}; the zoo has {', '.join(ZOO)}")
    layers, shape = ZOO[name]
    return analyze(layers, shape)


def distinct_conv_layers(names=("alexnet", "vgg19", "resnet50")) -> dict[str, dict]:
    """label -> conv geometry of every distinct convolution of the named networks: the first
    layer of each (in, out, H x W, kernel, stride, padding) seen, labelled "<network> <layer>
    <C>->{O} <H>x<W> k<K>[ s<S>][ p<P>]"; groups are left out (the kernels take groups=1)."""
    layers, seen = {}, set()
    for network in names:
        for cost in network_costs(network):
            conv = cost.layer
            if cost.kind != "conv" or conv.groups != 1:
                continue
            c, h, w = cost.input_shape
            kh, kw = (conv.kernel, conv.kernel) if isinstance(conv.kernel, int) else conv.kernel
            stride = conv.stride if isinstance(conv.stride, int) else conv.stride[0]
            padding = conv.padding if isinstance(conv.padding, int) else conv.padding[0]
            key = (c, conv.out_channels, h, w, kh, kw, stride, padding)
            if key in seen:
                continue
            seen.add(key)
            label = (f"{network} {cost.name.split(':')[0]} {c}->{conv.out_channels} {h}x{w} k{kh}"
                     + (f"x{kw}" if kw != kh else "") + (f" s{stride}" if stride != 1 else "")
                     + (f" p{padding}" if padding else ""))
            layers[label] = {"in_channels": c, "out_channels": conv.out_channels, "height": h, "width": w,
                             "kernel": (kh, kw), "stride": stride, "padding": padding}
    return layers


if __name__ == "__main__":
    from sysdl_kernels.flops import analyze, totals
    for name, (layers, shape) in ZOO.items():
        total = totals(analyze(layers, shape))
        print(f"{name:18s} params {total['params']:13,d}  MACs {total['macs']:15,d}  "
              f"conv FLOPs {100 * total['conv_flops_share']:5.1f}%")
