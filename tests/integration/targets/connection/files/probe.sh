#!/bin/sh
# Run inside the container by ansible.builtin.script (copied in by the connection's put_file).
echo "probe ran as $(id -u) in $(hostname) with arg $1"
