#!/usr/bin/env bash
# bench/cuda_pack.sh - prepare build-gpupack/ on this machine for the GPU
# machine, which has the CUDA toolkit but not lamina's libraries (PCRE2,
# jansson, xxhash, libmicrohttpd, libcurl and what they pull in):
#   build-gpupack/bin/   lamina, test_cuda_forward, test_cuda_layout,
#                        gen_model (CUDA build, sm_90, stripped; with
#                        --with-quant also test_cuda_quant)
#   build-gpupack/lib/   the shared libraries those need beyond glibc,
#                        libstdc++ and CUDA's own
#   build-gpupack/llama/ llama.cpp's CUDA build (llama-bench,
#                        llama-batched-bench, llama-server and its libraries)
#                        when LLAMA_CUDA_BUILD names one (its build dir)
#   build-gpuxz/         all of build-gpupack as one .tar.xz
# Then run bench/cuda_device.sh there with build-gpupack (or build-gpuxz)
# carried.
#
# A device call carries at most 64 MiB with the tracked files (~33 MiB), so
# the pack stays small.
#
#   bench/cuda_pack.sh [--arch 90] [--with-quant]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=90
quant=0
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --with-quant) quant=1; shift ;;
    *) echo "usage: $0 [--arch 90] [--with-quant]" >&2; exit 2 ;;
    esac
done
B=build-gpu
cmake -S . -B "$B" -DLAMINA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j2 --target lamina test_cuda_forward test_cuda_quant test_cuda_layout gen_model
P=build-gpupack
rm -rf "$P"
mkdir -p "$P/bin" "$P/lib"
cp "$B"/{lamina,test_cuda_forward,test_cuda_layout,gen_model} "$P/bin/"
[ "$quant" = 1 ] && cp "$B/test_cuda_quant" "$P/bin/"
# libcurl is left to the machine (its image has it, with the TLS stack it
# pulls in): the call's size limit has no room for that closure
skip='/(libc|libm|libpthread|libdl|librt|libresolv|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libcurl)\.so'
for bin in "$P"/bin/*; do
    readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'
done | sort -u | while read -r soname; do
    path=$(ldconfig -p </dev/null | awk -v n="$soname" '$1 == n && /x86-64/ && !found {print $NF; found = 1}')
    [ -n "$path" ] && ! echo "$path" | grep -Eq "$skip" || continue
    { echo "$path"; ldd "$path" </dev/null | awk '/=> \// {print $3}'; } | grep -Ev "$skip" || true
done | sort -u | while read -r lib; do cp -L "$lib" "$P/lib/"; done
strip --strip-unneeded "$P"/bin/* "$P"/lib/* 2>/dev/null || true
if [ -n "${LLAMA_CUDA_BUILD:-}" ]; then
    mkdir -p "$P/llama"
    for t in llama-bench llama-batched-bench llama-server; do
        [ -f "$LLAMA_CUDA_BUILD/bin/$t" ] && cp "$LLAMA_CUDA_BUILD/bin/$t" "$P/llama/"
    done
    cp -L "$LLAMA_CUDA_BUILD"/bin/*.so* "$P/llama/" 2>/dev/null || true
    strip --strip-unneeded "$P"/llama/* 2>/dev/null || true
fi
# the same, compressed (a sixth of the size): carry build-gpuxz instead and
# bench/cuda_device.sh unpacks it, leaving room for other pieces in a call
mkdir -p build-gpuxz
tar cf - "$P" | xz -T1 -9 > build-gpuxz/gpupack.tar.xz  # -9: a dictionary that spans the binaries, which share their CUDA code
du -sh "$P" "$P"/* build-gpuxz
