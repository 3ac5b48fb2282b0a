// Command pause holds a Pod's sandbox open until it is told to stop.
//
// containerd starts it as the first process of every Pod sandbox. Nothing can be
// pulled from a registry here, so the cluster builds its own. Pods do not share a
// PID namespace in the tests, so it never has orphans to reap.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
