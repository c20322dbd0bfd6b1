# %% [markdown]
# # Watching a network grok
#
# A walkthrough of the workbench's public API: open (or train) a run, probe it, look at the
# figures, and inspect one key-frequency neuron cluster. Open this file as a notebook with
# Jupyter + jupytext or VS Code ("percent" cells), or run it as a script.
#
# `WORKBENCH_RUN` / `WORKBENCH_PRESET` choose the run (default: the `fast` preset as `demo`;
# it trains in about a minute if it does not exist yet), `WORKBENCH_CHECKPOINTS` where runs live
# (default: `checkpoints/`).

# %%
import os
from pathlib import Path

import workbench
from probes import fourier
from workbench import figures

RUN = os.environ.get("WORKBENCH_RUN", "demo")
PRESET = os.environ.get("WORKBENCH_PRESET", "fast")
ROOT = Path(os.environ["WORKBENCH_CHECKPOINTS"]) if os.environ.get("WORKBENCH_CHECKPOINTS") else None
run = workbench.train(RUN, PRESET, progress=False, root=ROOT)  # trains, resumes, or finds it complete
print(run, run.config.operation, "mod", run.config.p)

# %% [markdown]
# ## Training curves
# Train accuracy reaches 100% early; test accuracy stays near chance, then jumps.

# %%
metrics = run.metrics
print(metrics.tail(3))

# %% [markdown]
# ## Probe every checkpoint
# Cached: the second call does no work. It uses the run's current probe settings (the defaults
# until `make probe SET=...` or `workbench.probe(run, overrides={...})` changes them).

# %%
results = workbench.probe(run, progress=False)
print(results.summary())
phases = results.phases
key_freqs = results.key_frequencies["key_freqs"]
threshold = results.options.settings.neuron_threshold

# %%
figures.loss_curves(metrics, phases)

# %%
figures.progress_measures(results.tables["progress"], results.tables["weights"], results.tables["fourier"], phases)

# %%
figures.embedding_norms_bar(results.tables["fourier"], run.steps[-1], key_freqs)

# %% [markdown]
# ## One key-frequency neuron cluster
# Evaluate the final checkpoint on the whole (a, b) grid and find the neurons that a single
# frequency explains (at least the run's `neuron_threshold`, 85% by default, of their variance).

# %%
inp = workbench.evaluate_on_grid(run, run.steps[-1])
fractions = fourier.neuron_frequency_fractions(inp.neuron_acts)  # [K, d_mlp]
clusters = fourier.neuron_clusters(fractions, threshold)
for k in key_freqs:
    members = (clusters == k).nonzero().flatten().tolist()
    print(f"frequency {k}: {len(members)} neurons, e.g. {members[:5]}")
print("unexplained:", int((clusters == 0).sum()))

# %%
figures.neuron_grids(inp, key_freqs, threshold)

# %% [markdown]
# ## The model itself is a TransformerLens bridge
# Hooks work as usual: here the attention pattern from "=" on one input.

# %%
model = workbench.load_bridge(run, run.steps[-1])
logits, cache = model.run_with_cache(run.dataset.tokens[:4])
print(cache["blocks.0.attn.hook_pattern"][0, :, -1])  # [heads, 3]: to a, b, "="
