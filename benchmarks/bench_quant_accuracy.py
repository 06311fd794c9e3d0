"""Accuracy of weight sharing against bits per weight for three centroid inits (the paper's Figure 8).

LeNet-300-100 trained briefly on MNIST (a few epochs, not to convergence), then
every layer quantized to b = 2..8 bits with linear, density and random (Forgy)
init; with no pruning, or (``--prune``, as in the paper's study) after magnitude
pruning and a few epochs of retraining with the masks held, so that the kept
weights have the two-humped distribution the paper's init comparison is about. "plain Lloyd" is weight sharing by plain Lloyd k-means
(``relocate_empty=False``, as in the paper's study); "quantized" is weight
sharing with the default k-means (empty-cluster relocation, merge and split); "fine-tuned" adds
``--finetune-batches`` mini-batches (of 128) of centroid fine-tuning (Eq. 3;
centroids and biases trained with Adam, lr 1e-4). Adam, because Eq. 3 *sums*
the gradients of a cluster: with tens of thousands of weights per centroid,
plain SGD at a weight-sized learning rate diverges. The float baseline is measured in the same run.

Run: cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_quant_accuracy.py
"""

from __future__ import annotations

import argparse
import copy
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist:/work/shared/data/mnist")
    parser.add_argument("--arch", default="lenet300")
    parser.add_argument("--epochs", type=int, default=3, help="baseline training epochs")
    parser.add_argument("--finetune-batches", type=int, default=100, help="centroid fine-tuning batches (0: skip)")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="Adam learning rate for fine-tuning")
    parser.add_argument("--bits", default="2,3,4,5,6,7,8")
    parser.add_argument("--inits", default="linear,density,random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prune", default=None,
                        help='prune by magnitude first, e.g. "layers.0=0.92,layers.1=0.91,classifier=0.74" '
                             "(Deep Compression Table 2), then retrain with the masks held")
    parser.add_argument("--retrain-epochs", type=int, default=3, help="retraining epochs after --prune")
    args = parser.parse_args()

    import torch

    from deepcompress.data import load_dataset
    from deepcompress.models import build_model
    from deepcompress.pruning import layerwise_masks
    from deepcompress.quantize import SharedWeights, share_weights
    from deepcompress.training import TrainConfig, evaluate, make_optimizer, seed_everything, train

    torch.set_num_threads(2)
    seed_everything(args.seed)
    train_loader, test_loader, info = load_dataset(args.data, seed=args.seed)
    model = build_model(args.arch)
    cfg = TrainConfig(epochs=args.epochs, lr=0.05, seed=args.seed)
    t0 = time.perf_counter()
    train(model, train_loader, cfg, progress=False, log=lambda line: None)
    base = evaluate(model, test_loader)
    print(f"# {args.arch} on {info.name}: {args.epochs} epochs SGD (lr 0.05, cosine), {time.perf_counter() - t0:.0f}s")
    print(f"# float32 baseline top-1 error: {base['error_pct']:.2f}%")
    masks = None
    if args.prune:
        maskset = layerwise_masks(model, args.prune)
        rcfg = TrainConfig(epochs=args.retrain_epochs, lr=0.01, weight_decay=1e-4, seed=args.seed)
        opt = make_optimizer(model.parameters(), rcfg)
        handle = maskset.attach(model, opt)
        train(model, train_loader, rcfg, optimizer=opt, progress=False, log=lambda line: None)
        handle.remove()
        maskset.check(model)
        masks = maskset.masks
        kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
        print(f"# pruned to {args.prune} ({100 * kept:.1f}% of the masked weights kept), retrained "
              f"{args.retrain_epochs} epochs (SGD lr 0.01, cosine): top-1 error {evaluate(model, test_loader)['error_pct']:.2f}%")
    print()

    bits_list = [int(b) for b in args.bits.split(",")]
    inits = args.inits.split(",")
    head = "| bits | " + " | ".join(f"{i} plain Lloyd" for i in inits)
    head += " | " + " | ".join(f"{i} quantized" for i in inits)
    if args.finetune_batches:
        head += " | " + " | ".join(f"{i} fine-tuned" for i in inits)
    print(f"Top-1 error (%) after weight sharing of every layer ({'pruned' if masks else 'no pruning'}):\n")
    print(head + " |")
    print("|" + "---|" * (1 + len(inits) * (3 if args.finetune_batches else 2)))
    for bits in bits_list:
        plain, quantized, tuned = [], [], []
        for init in inits:
            pmodel = copy.deepcopy(model)
            share_weights(pmodel, bits, masks=masks, init=init, seed=args.seed, relocate_empty=False)
            plain.append(evaluate(pmodel, test_loader)["error_pct"])
            qmodel = copy.deepcopy(model)
            books = share_weights(qmodel, bits, masks=masks, init=init, seed=args.seed)
            quantized.append(evaluate(qmodel, test_loader)["error_pct"])
            if args.finetune_batches:
                shared = SharedWeights.attach(qmodel, books)
                centroid_ids = {id(p) for p in shared.parameters()}
                others = [p for p in qmodel.parameters() if id(p) not in centroid_ids]
                ft_cfg = TrainConfig(epochs=1, lr=args.finetune_lr, optimizer="adam", weight_decay=0.0)
                opt = make_optimizer(list(shared.parameters()) + others, ft_cfg)
                train_loader.set_epoch(100)
                qmodel.train()
                for step, (inputs, targets) in enumerate(train_loader):
                    if step == args.finetune_batches:
                        break
                    opt.zero_grad(set_to_none=True)
                    torch.nn.functional.cross_entropy(qmodel(inputs), targets).backward()
                    opt.step()
                shared.detach()
                tuned.append(evaluate(qmodel, test_loader)["error_pct"])
        cells = [f"{e:.2f}" for e in plain + quantized + tuned]
        print(f"| {bits} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n# total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
