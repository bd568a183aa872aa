package server

import "syscall"

// syscallEMFILE is "too many open files": Accept retries after a pause.
var syscallEMFILE error = syscall.EMFILE
