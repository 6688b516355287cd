"""Your own training loop, made binary by two added lines (marked ``# +``).

A plain PyTorch loop (no abrnet engine) trains an MLP on scikit-learn's 8x8 digits.
``abrnet.BinarizationSchedule`` drives every ABR to its exact step over the loop's
budget of steps; ``abrnet.binarize`` then deploys the model with every hidden
representation exactly 0/1. The last line counts every deployed step output.
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import abrnet
from abrnet.stats import non_binary_outputs

torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.2, random_state=0, stratify=y)
x_train, x_test = (torch.tensor(a, dtype=torch.float32) for a in (x_train, x_test))
y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)

model = nn.Sequential(nn.Linear(64, 256), abrnet.ABR(256), nn.Linear(256, 128), abrnet.ABR(128), nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
epochs, batch = 40, 32
lr_decay = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[25], gamma=0.1)
steps = epochs * -(-len(x_train) // batch)
schedule = abrnet.BinarizationSchedule(model, opt, total_steps=steps, held_out=x_train[:256])  # +

for _ in range(epochs):
    model.train()
    for idx in torch.randperm(len(x_train)).split(batch):
        loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()  # the schedule's hooks run around this step
    lr_decay.step()


def accuracy(net: nn.Module) -> float:
    with torch.no_grad():
        return (net.eval()(x_test).argmax(1) == y_test).float().mean().item()


deployed = abrnet.binarize(model)  # +
checked = non_binary_outputs(abrnet.binarization_stats(deployed, x_test))  # every step output, counted
print(f"{schedule}")
print(f"training form {accuracy(model):.4f}; {checked['layers']} step layers, {checked['outputs_checked']:,} outputs")
print(f"deployed accuracy {accuracy(deployed):.4f}, non-binary outputs {checked['non_binary_outputs']}")
