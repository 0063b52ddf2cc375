// An S3 for `make bench` that keeps connections alive (moto closes each one) and honours the
// conditional PutObject the consumer relies on: gofakes3 over its in-memory backend.
// Usage: gofakes3 ADDRESS (host:port); prints "listening on ADDRESS" once it accepts.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: gofakes3 HOST:PORT")
	}
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	faker := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	log.Fatal(http.Serve(listener, faker.Server()))
}
