# %% [markdown]
# # Watching a network grok
#
# A walkthrough of the workbench's public API: open (or train) a run, probe it, look at the
# figures, and inspect one key-frequency neuron cluster. Open this file as a notebook with
# Jupyter + jupytext or VS Code ("percent" cells), or run it as a script.
#
# `WORKBENCH_RUN` / `WORKBENCH_PRESET` choose the run (default: the `fast` preset as `demo`;
# it trains in about a minute if it does not exist yet).

# %%
import os

import workbench
from probes import fourier
from workbench import figures

RUN = os.environ.get("WORKBENCH_RUN", "demo")
PRESET = os.environ.get("WORKBENCH_PRESET", "fast")
run = workbench.train(RUN, PRESET, progress=False)  # trains, resumes, or finds it complete
print(run, run.config.operation, "mod", run.config.p)

# %% [markdown]
# ## Training curves
# Train accuracy reaches 100% early; test accuracy stays near chance, then jumps.

# %%
metrics = run.metrics
print(metrics.tail(3))

# %% [markdown]
# ## Probe every checkpoint
# Cached: the second call does no work.

# %%
report = workbench.probe(run, progress=False)
print(report.summary())
phases = report.phases
key_freqs = report.key_frequencies["key_freqs"]

# %%
figures.loss_curves(metrics, phases)

# %%
figures.progress_measures(report.tables["progress"], report.tables["weights"], report.tables["fourier"], phases)

# %%
figures.embedding_norms_bar(report.tables["fourier"], run.steps[-1], key_freqs)

# %% [markdown]
# ## One key-frequency neuron cluster
# Load the final checkpoint's activations over the whole (a, b) grid and find the neurons that
# a single frequency explains (>= 85% of their variance).

# %%
ckpt = workbench.load_checkpoint(run, run.steps[-1])
fractions = fourier.neuron_frequency_fractions(ckpt.neuron_acts)  # [K, d_mlp]
clusters = fourier.neuron_clusters(fractions)
for k in key_freqs:
    members = (clusters == k).nonzero().flatten().tolist()
    print(f"frequency {k}: {len(members)} neurons, e.g. {members[:5]}")
print("unexplained:", int((clusters == 0).sum()))

# %%
figures.neuron_grids(ckpt, key_freqs)

# %% [markdown]
# ## The model itself is a TransformerLens bridge
# Hooks work as usual: here the attention pattern from "=" on one input.

# %%
model = run.model(run.steps[-1])
logits, cache = model.run_with_cache(run.dataset.tokens[:4])
print(cache["blocks.0.attn.hook_pattern"][0, :, -1])  # [heads, 3]: to a, b, "="
