"""jcomrl: context-based offline meta-RL in JAX."""

from setuptools import find_packages, setup

setup(
    name="jcomrl",
    version="0.1.0",
    description="JAX/Flax framework for context-based offline meta-reinforcement learning",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["jcomrl", "jcomrl.*"]),
    install_requires=[
        # jax 0.10.x on the CPU machines (py3.11), 0.11.x on the GPU machine (py3.12).
        "jax>=0.10,<0.12",
        "flax>=0.11,<0.13",
        "optax>=0.2.4,<0.3",
        "chex>=0.1.89,<0.2",
        "orbax-checkpoint>=0.11,<0.13",
        "ml-collections>=1.0,<2",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "matplotlib>=3.8,<4",
        "tensorboardX>=2.6,<3",
        # MuJoCo MJX physics and brax.training (behaviour policies); wheels only, no binary download.
        "mujoco>=3.3,<5",
        "mujoco-mjx>=3.3,<4",
        "brax>=0.12.4,<0.15",
    ],
    extras_require={
        "dev": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "ruff>=0.6"],
    },
)
