// Baseline for the agent-footprint bench: nothing but a timer, run through tsx.
setInterval(() => {}, 1000);
