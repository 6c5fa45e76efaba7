"""Published pruned ImageNet architectures that Rethinking trains from scratch, as (arch, cfg, options).

ThiNet (Luo et al.), regression-based channel pruning (He et al.) and Sparse Structure Selection
(Huang and Wang) are not pruned here: their papers fix the architecture and Rethinking trains it
from scratch (Scratch-E and -B), so each is a cfg of a registered architecture
(PROTOCOLS-IMAGENET 2.2-2.5). Li et al.'s ResNet-34-A/B/C are pruned from trained weights: they
are variants (:mod:`prunebench.pruning.variants`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prunebench.core.errors import UserError

from . import resnet_imagenet
from .preresnet_imagenet import sss_cfg


@dataclass(frozen=True)
class Published:
    arch: str
    cfg: list
    options: dict = field(default_factory=dict)


# ThiNet's VGG-16s (2.2): conv1_1-conv4_3 halved; GAP and Tiny drop pool5 and the FC layers.
THINET_VGG = {
    "conv": [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 4096, 4096],
    "gap": [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 512, 512, 512],
    "tiny": [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M", 128, 128, 256],
}
# He et al.'s VGG-16-5x (2.4), the widths of their released channel_pruning.prototxt.
VGG16_5X = [24, 22, "M", 41, 51, "M", 108, 89, 111, "M", 184, 276, 228, "M", 512, 512, 512, "M", 4096, 4096]

# ThiNet-k keeps k % of both inner widths of every bottleneck: int(planes * k / 100) (2.3).
THINET_RESNET = {30: (19, 38, 76, 153), 50: (32, 64, 128, 256), 70: (44, 89, 179, 358)}

# ResNet-50-2x (2.4): [c1, c2] per block, and the input channels each block's conv1 reads
# (regression-pruning models/filter.pkl, PROTOCOLS-IMAGENET Appendix): hex, channel 0 the most
# significant bit of the first digit.
RESNET50_2X_INNER = [
    (64, 55), (51, 39), (50, 37),
    (128, 106), (105, 72), (105, 72), (128, 110),
    (256, 225), (209, 147), (204, 158), (212, 155), (211, 148), (256, 213),
    (512, 433), (512, 437), (512, 440),
]
RESNET50_2X_MASKS = (
    "887f3eca89af5539",  # layer1.0
    "202665089d54d39ad6499b888911a8895dc0c0b35db1a2f154c60018081a8644",  # layer1.1
    "0a2128089e4ac31a5a484bc4e98588e0c9c5a2b80791e045e10065b08a198660",  # layer1.2
    "026cef08df35d3be7e7963d879e755e56bc2c83a7f58db7d6c5177e441fa2e35",  # layer2.0
    (  # layer2.1
        "2e2ec8dc484e123502c086a46028b19210502013c20b880289a4b4652a2414587ed60419842f6af12c547844"
        "be190640e77870463df41ce488afc80b6451cb2d"
    ),
    (  # layer2.2
        "0c1ef21f904e3e8110669420623c9790c07c4b05c08c6a5619ba10002e2400291ad04b014082c8d108402831"
        "2e93c3706e306b842d5708b4ec2b20a7b4149af9"
    ),
    (  # layer2.3
        "3f0628dd3a6e1a6b167378fd7ef5f25c56a1641b16ebca5bdfb1d48abe25777bbf5c6f62b27c9dea6ee4cc42"
        "1eddb746e4117c0e4f9d3dd1e9b59d97271da6ee"
    ),
    (  # layer3.0
        "dd6ba8df6b243f91d202f6a1906ffe41727de73706ec6c3ff5adc58b714ee74af95c5bf8fc9d5d2132a6ee42"
        "0aaaf445ee92620f4c1d20ddeebaa7a2a73dae6b"
    ),
    (  # layer3.1
        "f60a7078510f5425a2b073970d9d01121d4402243591c2b5204b30622d854e55a165cbd83aa27512062d0fa4"
        "198442224d612100d3a4221004ec806683f5cebac000624800f25ac0b64e9d08de416c45e0ae5d06472a62a5"
        "21a0270a04eb87d824f0507562be2d396a042cbf80317c60f453501316318d3ee28824396161e234"
    ),
    (  # layer3.2
        "c200143916ae5425809c63d8b18597926c7542223211c09180123ce3c481c81088812c3a3020fe22cc6c4b54"
        "190c910469716280f580535414cc20f2883dde6e94044042bac252c3f05c150056c0ed9ce0dcdc1e1b4ad0e7"
        "40e015ba04e901102e61c86343aa4f116a042dff9031fd401c73143014310c7ce3a8341804c1c2bc"
    ),
    (  # layer3.3
        "d2582122376c554d9c25aa7797c5e796561340063111411140a259eb59a8451489813c252424f426c0f08a56"
        "b04cd00045e115e53501d20c574c61bca1bdffeb841005543f831005f05c148c508044dec2a8061733e250a7"
        "496045934c6c1da40079e8254386c413734041d5c058d58e63731d0890206d6e7025f53700c3483d"
    ),
    (  # layer3.4
        "92714828602451ad80056a1494c6a3131d00482235118909c036c9da998148a2998cb80181bed40e8473ca17"
        "501cd405496928a347815abc4044006e8a3cfccda6814252ee53b015b0141480c8a8c71ed4180e57c34251e0"
        "4184059209081da12a54ee375e87e79bba00c5dddcc4d58ac140597016024664f6a606cd0a07d835"
    ),
    (  # layer3.5
        "d7a865ffd53fb7afe26ffd95fdbff38abf44900a77d7c327a179e5153dc35e57cda062bc81caff269ef7e6ff"
        "52c75e275f6ae943c1c8781dcefe9466e39acef4f8c877fffe7d7c095cc88608ae5cecd6eafc1c0cef0ec1ed"
        "ef970fabca473d983e76e966f7d3971f726207efdd8f7d6cf0e6751a76ff5ddaa6961eeb3660e970"
    ),
    (  # layer4.0
        "dfb071fbf63efd8fa227263dccc7caf71f0a9e1870271b27c173eae7ffc9df51bf18eb80814cdce3dc67ea56"
        "52b45a3c5fa2a943f7fe2a9cc35e9077ff59cfedaeef3d6becfff49d37c1863ce79d0cedc6fe9e5ff7d6c979"
        "e5265ce897452feb3bdaabe6ee8d37bf5b6915fc536dd5fc8e8455f67ee77ef5e6833aef4367cfac"
    ),
    (  # layer4.1
        "d2b0bdb5779f0e7abbaf8783ffa755f930bff9411ad9b6751dad11ff779ba2860f52bf277fab8595f3d42f47"
        "14d32f5e6a9859dd57bcddcefe36eff77cf792b7aeffca6b261baa395adb1f1c1c6bf6bbfb249739ff97c0ff"
        "5ed28b3efff75f5d7b6cba7f39fa6d9cbfcfd0415663753a4fd1c0774c78f231839a8ad0bd4816db5d635fcf"
        "ccbd7736f066ef9dff4adb8fb5cb03c1f7c317d7fc1e95687470eb127f237b0a5ef7c74d5dadaa13ba6b3770"
        "aa60f4fff57b677e59be56bf04866e4fa47eb4f7effe12336754497fb3dd38f27e3dd0675cfa2d9aa2c5ffcf"
        "7e893f84fd9eee4f7de7721ce17b67f7965aeecb7afdfb44b2763fcd99fd439796267e5f"
    ),
    (  # layer4.2
        "8ef82f3233bf8b7efaeec0c09c8e32fbb2ae5c8c08ccf157079f1d9d73f80812e6bebd654c6b15eb714c1e47"
        "9ddd452f7a38caeb2a74df237e8fed777cffb62834119bca7e9895370a02d99def8bff515efc961f669b9116"
        "0c34a989b2b2795c69685d4c3d74247c6e6f6bd7c534f6321cfd663dc5f4fa77e3aacd762faa3ab34fe28862"
        "4d8efb432cdece597756359b2d84e72f315a34bf5f6a7968357632c8db1db35c4b9def1c79a6e113b7bd93c6"
        "a3e1faff5b6343f85924d79746b24eafa7fd3cbbe75f09df66d00b3afd457056737e0c774ebfc46a9ec357ef"
        "0104c391f79eef6e5dff66a7616ff78ff58fa60d73f4d857e275f79719ddd8cb3216ff9d"
    ),
)

# SSS (2.5): per stage (residual branches kept, first unit's branch kept), from the README.
SSS_STAGES = {
    41: [(0, False), (4, True), (6, True), (3, True)],
    32: [(1, False), (4, True), (4, True), (1, True)],
    26: [(0, False), (2, False), (5, False), (1, True)],
}


def mask_indices(hex_mask: str) -> list[int]:
    bits = "".join(f"{int(d, 16):04b}" for d in hex_mask)
    return [i for i, b in enumerate(bits) if b == "1"]


def thinet_resnet_cfg(keep: int) -> list:
    cfg = resnet_imagenet.resnet50_cfg()
    inner = [w for w, n in zip(THINET_RESNET[keep], resnet_imagenet.BLOCKS) for _ in range(n)]
    return [v for i, w in enumerate(inner) for v in (cfg[3 * i], w, w)]


def resnet50_2x_cfg() -> list:
    return [v for mask, (c1, c2) in zip(RESNET50_2X_MASKS, RESNET50_2X_INNER) for v in (mask_indices(mask), c1, c2)]


_REFERENCE = {"downsample_bias": True}  # the thinet and regression folders' ResNet-50

PUBLISHED: dict[str, Published] = {
    "vgg16-thinet-conv": Published("vgg16_nobn", THINET_VGG["conv"]),
    "vgg16-thinet-gap": Published("vgg16_nobn", THINET_VGG["gap"], {"head": "gap"}),
    "vgg16-thinet-tiny": Published("vgg16_nobn", THINET_VGG["tiny"], {"head": "gap"}),
    "vgg16-5x": Published("vgg16_nobn", VGG16_5X),
    **{f"resnet50-thinet{k}": Published("resnet50", thinet_resnet_cfg(k), _REFERENCE) for k in THINET_RESNET},
    "resnet50-2x": Published("resnet50", resnet50_2x_cfg(), _REFERENCE),
    **{f"resnet{d}-sss": Published("preresnet50", sss_cfg(stages)) for d, stages in SSS_STAGES.items()},
}


def published(name: str) -> Published:
    if name not in PUBLISHED:
        raise UserError(f"unknown published architecture {name!r}; choose one of {', '.join(PUBLISHED)}")
    p = PUBLISHED[name]
    return Published(p.arch, list(p.cfg), dict(p.options))
