// Package crilog records a process's output in the CRI logging format that
// containerd and CRI-O write and the kubelet reads, and reads it back with the
// options of `kubectl logs` (follow, tailLines, sinceSeconds/sinceTime,
// timestamps, limitBytes, stream).
//
// One entry per line of output:
//
//	2016-10-06T00:17:09.669794202Z stdout F a whole line
//	2016-10-06T00:17:09.669794203Z stderr P the first 16 KiB of a longer line
//
// "F" ends a line (its newline is the entry's); "P" is a piece of a line longer
// than MaxLine, continued by the next entry of the same stream. Every entry is
// written with one write call under a lock, so stdout and stderr interleave by
// whole entries and a reader never sees half an entry of a finished write.
//
// A Capture owns the pipes a process writes to: the reading side lives in the
// caller's process, so the log is complete exactly when the last holder of
// the pipes (the process or a child it left behind) has gone — Done says so.
// Follow in Read ends there.
//
// Dangerous: output passes through the capturing process; if it stops
// reading (it exited), writers get EPIPE. The pod runtime uses it only for
// processes that die with it.
package crilog
