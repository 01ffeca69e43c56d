// Package proc starts long-running processes detached from the caller and
// keeps a record of each on disk, so that a later, different process (the
// next `podnet down`) can find and end exactly them.
//
// A process is started in its own session (setsid), with stdin on /dev/null
// and stdout and stderr appended to a log file, optionally inside a network
// namespace. Its record, procs/<name>.json, holds the name, the pid, the
// start time from field 22 of /proc/<pid>/stat (clock ticks since boot) and
// the argv. A pid alone is not an identity: the kernel reuses pids. A record
// therefore matches a live process only while that pid exists, is not a
// zombie and still has the recorded start time, and signals go through a
// pidfd opened before that check, so a pid reused in between is never hit.
//
// Dangerous: Stop and StopAll send SIGTERM, then SIGKILL, to every process
// whose record matches; a hand-edited record can point them at any process
// started at the same tick. Processes outlive the caller by design: whoever
// starts them must make sure something stops them. A process started inside
// a network namespace keeps that namespace alive after it has been deleted by
// name.
package proc
