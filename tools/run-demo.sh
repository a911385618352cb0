#!/usr/bin/env bash
# The main job on the embedded sample data: set everything up, then decode the sample hosts,
# check every CPU definition against every host (the matrix, with each model's own-core diagonal),
# a generic model across a mixed pool and, when the Nova plugin is
# installed, run the scheduling scenario through Nova's real filter and weigher handlers.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh >/dev/null
.venv/bin/arm-cpu-filter matrix
echo
# A generic model on a mixed pool (AWS Graviton2 and Ampere Altra on Linux 7.3, which lets MIDR be
# set): aarch32=off, plus the values KVM keeps at the host's (FP16, debug counters, ASID/VMID bits,
# EVT, cache line sizes); Graviton3 differs in three such fields (EVT, FWB, IDS) and stays out.
.venv/bin/arm-cpu-filter matrix --no-models --host graviton2-7.3 --host altra-7.3 --host graviton3-7.3 \
  --cpu armv8.2-a-v1,aarch32=off,feat_AdvSIMD=fp16,feat_FP=fp16,hw_prop_CTX_CMPs=1,hw_prop_BRPs=5,hw_prop_ASIDBITS=16bit,hw_prop_VMIDBits=16bit,feat_EVT=evt,hw_prop_CWG=4,hw_prop_ERG=4
if .venv/bin/arm-cpu-filter demo --help >/dev/null 2>&1; then
  echo
  .venv/bin/arm-cpu-filter demo
fi
