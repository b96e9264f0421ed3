"""The published PSLA teachers against an implementation this project did not write.

PSLA's model (psla's ``src/models/Models.py``, ``EffNetAttention``) is efficientnet_pytorch 0.7.0's
EfficientNet with a 1-channel stem, an average over the first 4 frequency rows of its last feature map,
and PSLA's 4-head attention (``src/models/HigherModels.py``, ``MHeadAttention``). The reference here is
efficientnet_pytorch itself (a registry package, pinned in requirements-test.txt) plus that head,
restated below from its formula. Files are written the way PSLA saves them (``nn.DataParallel``:
``module.`` prefix; the weight-averaged ones with every tensor averaged, so ``num_batches_tracked`` is
a float) under the published names, and go through ``teacher_run_for``, the path ``make
teacher-logits TEACHER=<file> LABELS=<vocabulary>`` takes, then through ``model_from_checkpoint``, the
loader stage one's workers use.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from efficientnet_pytorch import EfficientNet

from pipeline.checkpoints import load_checkpoint, model_from_checkpoint
from pipeline.config import FrontEndConfig
from pipeline.features import wave_to_features
from pipeline.models import create_model
from pipeline.stage_one.published import IMPORTER_VERSION, PUBLISHED, teacher_run_for

HEADS = 4
EPS = 1e-7  # PSLA clamps its attention to [EPS, 1 - EPS]
B2_WIDTH = 1408
PROBABILITY_TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def calibrate_batch_norms(net: torch.nn.Module, image: torch.Tensor, seed: int) -> None:
    """Batch-norm statistics that are not the defaults: in one eval pass, each BatchNorm's running
    statistics are set just before it runs from the input it actually gets, then perturbed per channel
    (mean by 5 % of a standard deviation, variance by x0.8-1.25), so every layer stays in range and eps,
    the statistics and the affine terms all count."""
    generator = torch.Generator().manual_seed(seed)

    def set_statistics(bn, inputs):
        x = inputs[0]
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3))
        noise = torch.randn(mean.shape, generator=generator)
        bn.running_mean.copy_(mean + 0.05 * noise * var.sqrt())
        bn.running_var.copy_(var * torch.empty(var.shape).uniform_(0.8, 1.25, generator=generator))
        bn.weight.copy_(1 + 0.1 * torch.randn(mean.shape, generator=generator))
        bn.bias.copy_(0.1 * torch.randn(mean.shape, generator=generator))
        bn.num_batches_tracked.fill_(1234)

    hooks = [m.register_forward_pre_hook(set_statistics) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    net.eval()
    with torch.no_grad():
        net(image)
    for hook in hooks:
        hook.remove()


def calibrated_b2(seed: int) -> EfficientNet:
    """efficientnet_pytorch's B2 (PSLA's ``from_name``, no download) with random weights and batch-norm
    statistics calibrated on this project's features of the test clips (as a trained model's match its
    data; random weights on mismatched statistics amplify float32 rounding), then perturbed."""
    torch.manual_seed(seed)
    net = EfficientNet.from_name("efficientnet-b2", in_channels=1)
    front_end = FrontEndConfig(n_mels=128, target_length=1056, norm_mean=-4.6476, norm_std=4.5699, norm_divisor=1.0)
    calibrate_batch_norms(net, clips(front_end).transpose(1, 2).unsqueeze(1), seed + 1)
    return net


def psla_head_tensors(classes: int, seed: int) -> dict[str, torch.Tensor]:
    """PSLA's MHeadAttention parameters: per head a 1x1 Conv2d for attention and one for class scores,
    and the learned head weights (not summing to 1, as after training)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(HEADS):
        for kind in ("att", "cla"):
            tensors[f"attention.{kind}.{i}.weight"] = 0.08 * torch.randn(classes, B2_WIDTH, 1, 1, generator=generator)
            tensors[f"attention.{kind}.{i}.bias"] = 0.5 * torch.randn(classes, generator=generator)
    tensors["attention.head_weight"] = torch.tensor([0.31, 0.22, 0.27, 0.14])
    return tensors


def psla_reference(net: EfficientNet, head: dict[str, torch.Tensor], features: torch.Tensor):
    """(pooled feature sequence [batch, channels, time], probabilities [batch, classes]) as PSLA computes
    them: features [batch, frames, mels] -> image [batch, 1, mels, frames] -> efficientnet_pytorch's
    features -> mean of the first 4 frequency rows -> per head h: attention a = clamp(sigmoid(W_a x + b_a),
    EPS, 1 - EPS) normalised to sum 1 over time, class scores s = sigmoid(W_c x + b_c), pooled
    sum_t a * s; the output is sum_h head_weight[h] * pooled_h (a probability, no further sigmoid)."""
    with torch.no_grad():
        feature_map = net.extract_features(features.transpose(1, 2).unsqueeze(1))
        sequence = feature_map[:, :, :4, :].mean(dim=2)
        values = sequence.double()

        def conv1x1(kind: str, h: int) -> torch.Tensor:  # [batch, classes, time]
            weight, bias = head[f"attention.{kind}.{h}.weight"][:, :, 0, 0], head[f"attention.{kind}.{h}.bias"]
            return torch.einsum("kc,bct->bkt", weight.double(), values) + bias[:, None].double()

        output = 0
        for h in range(HEADS):
            attention = torch.sigmoid(conv1x1("att", h)).clamp(EPS, 1 - EPS)
            attention = attention / attention.sum(dim=2, keepdim=True)
            pooled = (attention * torch.sigmoid(conv1x1("cla", h))).sum(dim=2)
            output = output + head["attention.head_weight"][h].double() * pooled
    return sequence, output


def published_file(net: EfficientNet, head: dict, with_imagenet_fc: bool) -> dict[str, torch.Tensor]:
    """A state dict in PSLA's DataParallel layout: ``module.effnet.*`` and ``module.attention.*``."""
    state = {
        f"module.effnet.{k}": v.clone()
        for k, v in net.state_dict().items()
        if with_imagenet_fc or not k.startswith("_fc.")
    }
    state.update({f"module.{k}": v.clone() for k, v in head.items()})
    return state


def weight_averaged(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """psla's weight averaging: every tensor summed and divided by a float count, counters included."""
    total = {k: v.clone() for k, v in states[0].items()}
    for state in states[1:]:
        for key in total:
            total[key] = total[key] + state[key]
    return {k: v / float(len(states)) for k, v in total.items()}


def vocabulary(path, classes: int, audioset: bool):
    if audioset:
        rows = ["index,mid,display_name"] + [f'{i},/m/c{i},"class {i}"' for i in range(classes)]
    else:
        rows = [f"{i},class_{i},/m/c{i}" for i in range(classes)]
    path.write_text("\n".join(rows) + "\n")
    return path


def clips(front_end: FrontEndConfig, count: int = 2) -> torch.Tensor:
    """Features of a few synthetic clips through this project's front end (tones, clicks and noise)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(16000 * 2.5)) / 16000
    waves = []
    for i in range(count):
        wave = 0.3 * np.sin(2 * np.pi * (300 + 500 * i) * t) * (t > 0.4 * i)
        wave += 0.05 * rng.standard_normal(t.size)
        wave[::4000] += 0.8
        waves.append(wave.astype(np.float32))
    return torch.stack([wave_to_features(w, front_end) for w in waves])


@pytest.fixture(scope="module")
def backbones():
    single = calibrated_b2(seed=10)
    other_epoch = calibrated_b2(seed=20)
    return single, other_epoch


# every published name imports without a warning; the outputs are compared for one file of each kind
# (a single model with efficientnet_pytorch's unused ImageNet classifier, a weight-averaged one with float
# counters) and each front end (AudioSet 1056 frames, FSD50K 3000): a B2 forward is seconds on a CPU
@pytest.mark.parametrize(
    "name, compare",
    [("as_mdl_0.pth", True), ("as_mdl_0_wa.pth", False), ("fsd_mdl_best_single.pth", False), ("fsd_mdl_wa.pth", True)],
)
def test_a_published_psla_file_imports_into_psla_function(tmp_path, monkeypatch, capsys, backbones, name, compare):
    monkeypatch.chdir(tmp_path)
    known = PUBLISHED[name]
    single, other_epoch = backbones
    head = psla_head_tensors(known.num_classes, seed=3)
    if name.endswith("_wa.pth"):
        state = weight_averaged([published_file(single, head, False), published_file(other_epoch, head, False)])
        assert state["module.effnet._bn0.num_batches_tracked"].dtype == torch.float32  # as psla's WA files
        reference_net = EfficientNet.from_name("efficientnet-b2", in_channels=1)
        reference_net.load_state_dict(
            {k[len("module.effnet.") :]: v for k, v in state.items() if k.startswith("module.effnet.")}, strict=False
        )
        reference_net.eval()
    else:
        state = published_file(single, head, with_imagenet_fc=name.startswith("as_"))
        reference_net = single
    torch.save(state, tmp_path / name)
    labels = vocabulary(tmp_path / "labels.csv", known.num_classes, audioset=known.trained_on == "audioset")

    run = teacher_run_for(str(tmp_path / name), "published", labels=str(labels))
    console = capsys.readouterr()
    assert "warning" not in console.err + console.out  # a known published file imports without a deviation
    imported = load_checkpoint(f"{run}/checkpoints/final.pt")
    assert (
        imported["imported_from"]["warnings"] == []
        and imported["imported_from"]["importer_version"] == IMPORTER_VERSION
    )
    model, _, ckpt = model_from_checkpoint(run)  # what stage one's workers load
    assert model.model_name == "efficientnet_b2_psla" and model.model_config["pooling"] == "psla_attention"

    front_end = FrontEndConfig(**ckpt["front_end"])
    assert (front_end.target_length, front_end.norm_divisor) == (known.target_length, 1.0)
    if not compare:
        return
    features = clips(front_end, count=1)
    sequence, expected = psla_reference(reference_net, head, features)
    seen = {}
    model.head.register_forward_pre_hook(lambda _, inputs: seen.update(feature_map=inputs[0]))
    with torch.no_grad():
        ours = torch.sigmoid(model(features).double())
    # the backbone: its feature map (4 frequency rows at 128 mel bins) equals efficientnet_pytorch's
    assert seen["feature_map"].shape[2] == 4
    torch.testing.assert_close(seen["feature_map"].mean(dim=2), sequence, rtol=1e-4, atol=1e-4)
    assert float((ours - expected).abs().max()) < PROBABILITY_TOLERANCE
    assert float(expected.std()) > 0.05  # the probabilities spread: the comparison is not between constants


def test_the_old_import_differs_and_warns(tmp_path, backbones, capsys):
    """The model the first importer built (timm's efficientnet_b2, BN eps 1e-5, softmax attention)
    still loads a PSLA file, but every way it differs is a console warning, and it is far off."""
    single, _ = backbones
    head = psla_head_tensors(5, seed=3)
    torch.save(published_file(single, head, True), tmp_path / "someone.pth")
    old = create_model(
        "efficientnet_b2",
        num_classes=5,
        n_mels=128,
        target_length=100,
        pooling="attention",
        checkpoint=tmp_path / "someone.pth",
    ).eval()
    report = old.import_report
    assert len(report.warnings) == 2
    assert any("eps 1e-05" in w for w in report.warnings) and any("psla_attention" in w for w in report.warnings)
    report.print_warnings()
    assert capsys.readouterr().err.count("warning: someone.pth:") == 2
    tf = create_model(
        "efficientnet_b2",
        num_classes=5,
        n_mels=128,
        target_length=100,
        pooling="psla_attention",
        tf_variant=True,
        checkpoint=tmp_path / "someone.pth",
    )
    assert len(tf.import_report.warnings) == 1 and "symmetrically" in tf.import_report.warnings[0]
    fixed = create_model(
        "efficientnet_b2_psla", num_classes=5, n_mels=128, target_length=100, checkpoint=tmp_path / "someone.pth"
    ).eval()
    assert fixed.import_report.warnings == []
    features = torch.randn(2, 100, 128, generator=torch.Generator().manual_seed(0))
    _, expected = psla_reference(single, head, features)
    with torch.no_grad():
        assert float((torch.sigmoid(fixed(features).double()) - expected).abs().max()) < PROBABILITY_TOLERANCE
        assert float((torch.sigmoid(old(features).double()) - expected).abs().max()) > 1e-2
        assert float((torch.sigmoid(tf.eval()(features).double()) - expected).abs().max()) > PROBABILITY_TOLERANCE


def by_module_order(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> dict[str, str]:
    """Key of ``theirs`` -> key of ``ours``, pairing the two state dicts in order: efficientnet_pytorch and
    timm register an EfficientNet's tensors in the same order (stem, blocks, head), independently of
    any name table in the project."""
    assert len(theirs) == len(ours)
    pairs = dict(zip(theirs, ours))
    assert all(theirs[a].shape == ours[b].shape for a, b in pairs.items())
    return pairs


def test_psla_imagenet_start_is_efficientnet_pytorch_given_the_same_weights(monkeypatch, tmp_path):
    """pretrained=imagenet for efficientnet_b2_psla: timm's TF-ported AutoAugment B2 weights
    (tf_efficientnet_b2.aa_in1k, here random stand-ins in a local hub cache: nothing can be downloaded)
    used with symmetric padding and BN eps 1e-3, and a new 1-channel stem. Given the same tensors,
    efficientnet_pytorch's B2 with its stem replaced as ``from_pretrained(..., in_channels=1)`` does
    computes the same features."""
    import timm

    from .test_models import fake_hub_cache

    torch.manual_seed(4)
    imagenet = timm.create_model("tf_efficientnet_b2")  # 3 channels, ImageNet classifier, as the hub file
    calibrate_batch_norms(imagenet, torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(4)), 5)
    fake_hub_cache(tmp_path, "timm/tf_efficientnet_b2.aa_in1k", imagenet)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours = create_model("efficientnet_b2_psla", num_classes=5, n_mels=128, target_length=96, pretrained="imagenet")
    ours.eval()
    backbone = ours.backbone.state_dict()
    for key, value in imagenet.state_dict().items():
        if key.startswith(("classifier.", "conv_stem.")):
            continue
        assert torch.equal(backbone[key], value), key
    stem = backbone["conv_stem.weight"]
    assert stem.shape == (32, 1, 3, 3)
    assert not torch.allclose(
        stem, imagenet.conv_stem.weight.sum(dim=1, keepdim=True)
    )  # a new stem, not timm's RGB sum
    bound = 1 / (9**0.5)  # PyTorch's default Conv2d init, which efficientnet_pytorch's new stem gets
    assert float(stem.abs().max()) <= bound and float(stem.std()) > bound / 4

    # the architecture: efficientnet_pytorch's B2 with its stem swapped as from_pretrained(in_channels=1)
    # does, given our tensors, computes our features. A random stem on statistics made for another one
    # saturates, so the statistics are first re-calibrated (in ours; the reference gets the same tensors)
    image = torch.randn(2, 1, 128, 96, generator=torch.Generator().manual_seed(6))
    calibrate_batch_norms(ours.backbone, image, 8)  # on the image compared: every layer stays in range
    reference = EfficientNet.from_name("efficientnet-b2")
    reference._change_in_channels(1)
    theirs = {k: v for k, v in reference.state_dict().items() if not k.startswith("_fc.")}
    pairs = by_module_order(theirs, ours.backbone.state_dict())
    reference.load_state_dict({a: ours.backbone.state_dict()[b] for a, b in pairs.items()}, strict=False)
    reference.eval()
    with torch.no_grad():
        expected = reference.extract_features(image)
        got = ours.backbone.forward_features(image)
    assert float(expected.std()) > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
