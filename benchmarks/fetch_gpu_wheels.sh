#!/usr/bin/env bash
# Downloads the wheels the GPU machine lacks (its image has jax, flax, optax, chex, orbax, absl)
# into .whl/ (git-ignored) for the device tool's `carry`; see benchmarks/gpu_session.sh.
# Python 3.12, x86-64 manylinux; the set that was seen running brax MJX envs on an H100.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do plat="$plat --platform $p"; done
for pkg in mujoco==4.0.0 mujoco-core==4.0.0 mujoco-mjx==3.17.0 brax==0.14.2 ml-collections==1.1.0 \
           jaxopt trimesh tensorboardx flask flask-cors itsdangerous blinker glfw pyopengl; do
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $plat -d .whl "$pkg"
done
du -sh .whl
