"""What runs the laws: finding and guarding backends, the runner, `vaespec check`'s worker processes
and output, and `vaespec fidelity`."""
