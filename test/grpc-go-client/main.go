// A minimal grpc-go client for berth's transport tests: it dials a unix socket the way
// crictl and the kubelet do (the dial target is what becomes the HTTP/2 :authority;
// grpc-go of about 1.5x sends a socket path there as it is), then calls
// RuntimeService/Version three times on one connection (so later calls reuse HPACK's
// dynamic table) and prints each raw response. No generated code: the request is empty
// and the response is printed as bytes, so the same file builds against any grpc-go.
//
// Usage: grpc-go-client TARGET SOCKET
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error)      { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error { *(v.(*[]byte)) = append([]byte(nil), data...); return nil }
func (rawCodec) Name() string                               { return "proto" }

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: grpc-go-client TARGET SOCKET")
		os.Exit(2)
	}
	target, socket := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	for i := 0; i < 3; i++ {
		req := []byte{}
		var resp []byte
		if err := conn.Invoke(ctx, "/runtime.v1.RuntimeService/Version", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
			fmt.Println("call:", err)
			os.Exit(1)
		}
		fmt.Printf("ok %q\n", resp)
	}
}
