"""Layer backward passes against torch autograd, SGD against torch.optim.SGD, and a short run."""
import io

import numpy as np
import pytest
import torch

from convkit import nn
from convkit.optim import SGD
from convkit.train import digits_model, train_digits
from oracle import assert_close

rng = np.random.default_rng(21)


def torch_twin(model):
    """The same network in torch float64, weights copied."""
    def convert(layer):
        if isinstance(layer, nn.Sequential):
            return torch.nn.Sequential(*(convert(child) for child in layer))
        if isinstance(layer, nn.DepthwiseSeparableConv2d):
            block = torch.nn.Sequential()
            block.add_module("depthwise", convert(layer.depthwise))
            block.add_module("pointwise", convert(layer.pointwise))
            return block
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            cls = torch.nn.Conv2d if isinstance(layer, nn.Conv2d) else torch.nn.ConvTranspose2d
            extra = {} if cls is torch.nn.Conv2d else {"output_padding": layer.output_padding}
            return cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                       layer.padding, dilation=layer.dilation, groups=layer.groups,
                       bias=layer.bias is not None, dtype=torch.float64, **extra)
        if isinstance(layer, nn.Linear):
            return torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        if isinstance(layer, nn.MaxPool2d):
            return torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        if isinstance(layer, nn.GlobalAvgPool2d):
            return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        return {nn.ReLU: torch.nn.ReLU, nn.Flatten: torch.nn.Flatten}[type(layer)]()
    twin = convert(model)
    twin.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return twin


def test_digits_model_gradients_match_torch():
    model = digits_model(rng=0)
    for _, layer in model.named_modules():
        for name, value in list(layer._parameters.items()):
            if value is not None:
                setattr(layer, name, value.astype(np.float64))
    twin = torch_twin(model)
    x = rng.standard_normal((5, 1, 8, 8))
    y = np.array([0, 3, 9, 3, 1])
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), y)
    grad_x = model.backward(criterion.backward())
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(twin(xt), torch.tensor(y))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    assert_close(grad_x, xt.grad.numpy(), tol=1e-9)
    grads = {name: grad for name, _, grad in model.named_gradients()}
    for name, param in twin.named_parameters():
        assert_close(grads[name], param.grad.numpy(), tol=1e-9)


@pytest.mark.parametrize("layer", [
    nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=1,
                       dtype=np.float64),
    nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1, dtype=np.float64, rng=2), nn.ReLU(),
                  nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(),
                  nn.Linear(8 * 2 * 2, 3, dtype=np.float64, rng=3)),
], ids=["conv-transpose", "conv-pool-linear"])
def test_layer_backward_matches_torch(layer):
    twin = torch_twin(layer)
    x = rng.standard_normal((2, 4, 7, 7))
    out = layer(x)
    go = rng.standard_normal(out.shape)
    grad_x = layer.backward(go)
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.tensor(go))
    assert_close(out, twin(xt).detach().numpy())
    assert_close(grad_x, xt.grad.numpy(), tol=1e-9)
    grads = {name: grad for name, _, grad in layer.named_gradients()}
    for name, param in twin.named_parameters():
        assert_close(grads[name], param.grad.numpy(), tol=1e-9)
    layer.zero_grad()
    assert all(grad is None for _, _, grad in layer.named_gradients())


def test_sgd_momentum_matches_torch():
    layer = nn.Linear(3, 2, dtype=np.float64, rng=4)
    twin = torch_twin(layer)
    ours = SGD(layer, lr=0.1, momentum=0.9, weight_decay=0.01)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for step in range(3):
        x = rng.standard_normal((4, 3))
        ours.zero_grad()
        theirs.zero_grad()
        layer(x)
        layer.backward(np.ones((4, 2)))
        twin(torch.tensor(x)).sum().backward()
        ours.step()
        theirs.step()
    assert_close(layer.weight, twin.weight.detach().numpy(), tol=1e-12)


def test_short_training_run_lowers_the_loss():
    out = io.StringIO()
    history = train_digits(epochs=3, out=out)
    assert history.losses[-1] < 0.8 * history.losses[0]
    assert "test accuracy" in out.getvalue()
