"""An example third-party plugin for the ISNet benchmark suite."""
