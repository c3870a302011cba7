// csi-registrar: a minimal stand-in for kubernetes-csi's node-driver-registrar (which the
// Go module proxy does not serve), test tooling only. It serves the kubelet's plugin
// registration API (k8s.io/kubelet pluginregistration.v1) on a socket in the kubelet's
// plugins_registry directory and tells the kubelet the CSI driver's name and endpoint.
// Built by scripts/build-kube.sh (KUBE_TARGETS=csi-registrar).
//
// Usage: csi-registrar -driver-name NAME -csi-address /path/csi.sock -registration-dir DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registrar struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
	failed         chan string
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	log.Printf("GetInfo: %s at %s", r.name, r.endpoint)
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		log.Printf("registered with the kubelet")
	} else {
		r.failed <- s.Error
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

func main() {
	name := flag.String("driver-name", "", "the CSI driver's name (as its GetPluginInfo reports it)")
	endpoint := flag.String("csi-address", "", "the CSI driver's unix socket path, as the kubelet reaches it")
	dir := flag.String("registration-dir", "/var/lib/kubelet/plugins_registry", "the kubelet's plugin registration directory")
	flag.Parse()
	if *name == "" || *endpoint == "" {
		fmt.Fprintln(os.Stderr, "csi-registrar: -driver-name and -csi-address are required")
		os.Exit(2)
	}
	sock := filepath.Join(*dir, *name+"-reg.sock")
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatalf("listen %s: %v", sock, err)
	}
	r := &registrar{name: *name, endpoint: *endpoint, failed: make(chan string, 1)}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, r)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { _ = srv.Serve(lis) }()
	log.Printf("serving plugin registration for %s on %s", *name, sock)
	code := 0
	select {
	case <-sig:
	case e := <-r.failed:
		log.Printf("the kubelet refused the registration: %s", e)
		code = 1
	}
	srv.Stop()
	_ = os.Remove(sock)
	os.Exit(code)
}
