package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The demo's gRPC echo service. There is no .proto compiled here: the
// messages are the well-known google.protobuf.StringValue, the service is
// described by hand (echoDesc, echoFile), as this .proto would:
//
//	syntax = "proto3";
//	package flotilla.demo.v1;
//	import "google/protobuf/wrappers.proto";
//	service Echo {
//	  rpc Echo(google.protobuf.StringValue) returns (google.protobuf.StringValue);
//	  rpc EchoStream(stream google.protobuf.StringValue) returns (stream google.protobuf.StringValue);
//	}
const (
	// EchoService is the echo service's full name.
	EchoService = "flotilla.demo.v1.Echo"
	// EchoMethod is the unary call: the message comes back unchanged.
	EchoMethod = "/flotilla.demo.v1.Echo/Echo"
	// EchoStreamMethod is the bidirectional stream: each message sent
	// comes back unchanged, until the client closes its side.
	EchoStreamMethod = "/flotilla.demo.v1.Echo/EchoStream"
)

// MaxGRPCMessage caps a received gRPC message, as /echo caps its body
// (ResourceExhausted over it).
const MaxGRPCMessage = 64 << 10

// streamDeadlineGrace is how long after --stream-max-lifetime the HTTP/2
// stream itself is reset, so the call's own Unavailable status reaches
// the client first.
const streamDeadlineGrace = 5 * time.Second

// EchoStreamDesc describes EchoStream for a client's
// grpc.ClientConn.NewStream.
var EchoStreamDesc = grpc.StreamDesc{StreamName: "EchoStream", ServerStreams: true, ClientStreams: true}

// echoServer is the (empty) handler type of echoDesc: the handlers need
// nothing from it.
type echoServer interface{}

var echoDesc = grpc.ServiceDesc{
	ServiceName: EchoService,
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			echo := func(ctx context.Context, req any) (any, error) {
				if err := ctx.Err(); err != nil {
					return nil, status.FromContextError(err).Err()
				}
				return req, nil
			}
			if intercept == nil {
				return echo(ctx, in)
			}
			return intercept(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}, echo)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    EchoStreamDesc.StreamName,
		ServerStreams: true,
		ClientStreams: true,
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(*grpcEcho).echoStream(stream) },
	}},
	Metadata: "flotilla/demo/v1/echo.proto",
}

// echoFile is the descriptor of echoDesc, for reflection.
func echoFile() (protoreflect.FileDescriptor, error) {
	sv := ".google.protobuf.StringValue"
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(echoDesc.Metadata.(string)),
		Package:    proto.String("flotilla.demo.v1"),
		Dependency: []string{"google/protobuf/wrappers.proto"},
		Syntax:     proto.String("proto3"),
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Echo"),
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: proto.String("Echo"), InputType: &sv, OutputType: &sv},
				{Name: proto.String("EchoStream"), InputType: &sv, OutputType: &sv,
					ClientStreaming: proto.Bool(true), ServerStreaming: proto.Bool(true)},
			},
		}},
	}
	return protodesc.NewFile(fd, protoregistry.GlobalFiles)
}

// resolver finds the demo's own descriptors first, then the linked-in
// ones (wrappers, health, reflection), without adding to the global
// registry.
type resolver struct{ own *protoregistry.Files }

func (r resolver) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.own.FindFileByPath(p); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(p)
}

func (r resolver) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.own.FindDescriptorByName(n); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(n)
}

// grpcEcho serves the demo's gRPC side: health, echo and reflection.
type grpcEcho struct {
	srv       *grpc.Server
	health    *health.Server
	idle      time.Duration
	lifetime  time.Duration
	stopping  context.Context
	streaming map[string]bool // full method names of streaming calls
}

var errShutdown = errors.New("server shutting down")
var errLifetime = errors.New("stream lifetime reached (--stream-max-lifetime)")

func newGRPC(cfg Config, stopping context.Context) (*grpcEcho, error) {
	g := &grpcEcho{health: health.NewServer(), idle: cfg.StreamIdleTimeout, lifetime: cfg.StreamMaxLifetime, stopping: stopping}
	g.srv = grpc.NewServer(grpc.MaxRecvMsgSize(MaxGRPCMessage), grpc.StreamInterceptor(g.streamLimits))
	healthpb.RegisterHealthServer(g.srv, g.health)
	g.srv.RegisterService(&echoDesc, g)
	fd, err := echoFile()
	if err != nil {
		return nil, fmt.Errorf("echo service descriptor: %w", err)
	}
	own := new(protoregistry.Files)
	if err := own.RegisterFile(fd); err != nil {
		return nil, fmt.Errorf("echo service descriptor: %w", err)
	}
	ro := reflection.ServerOptions{Services: g.srv, DescriptorResolver: resolver{own}}
	reflectionv1.RegisterServerReflectionServer(g.srv, reflection.NewServerV1(ro))
	reflectionv1alpha.RegisterServerReflectionServer(g.srv, reflection.NewServer(ro))
	g.streaming = map[string]bool{}
	for name, info := range g.srv.GetServiceInfo() {
		for _, m := range info.Methods {
			if m.IsClientStream || m.IsServerStream {
				g.streaming["/"+name+"/"+m.Name] = true
			}
		}
	}
	return g, nil
}

// isGRPC reports whether r is a gRPC call by its content type. One over
// HTTP/1.1 goes to the gRPC server too, which answers 505 (gRPC needs
// HTTP/2), clearer than the web routes' 404.
func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// ServeHTTP serves one gRPC call from net/http's HTTP/2 server.
func (g *grpcEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.streaming[r.URL.Path] {
		// net/http bounds each HTTP/2 stream by --read-timeout and
		// --write-timeout; a streaming call is bounded by
		// --stream-max-lifetime instead (streamLimits), and by its
		// deadline.
		var at time.Time
		if g.lifetime > 0 {
			at = time.Now().Add(g.lifetime + streamDeadlineGrace)
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(at)
		_ = rc.SetWriteDeadline(at)
	}
	g.srv.ServeHTTP(w, r)
}

// streamLimits ends every streaming call (echo, health Watch, reflection)
// with Unavailable when the server shuts down or the call reaches
// --stream-max-lifetime. Unary calls are short and finish while
// http.Server.Shutdown waits for them.
func (g *grpcEcho) streamLimits(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	if g.lifetime > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeoutCause(ctx, g.lifetime, errLifetime)
		defer c()
	}
	stop := context.AfterFunc(g.stopping, func() { cancel(errShutdown) })
	defer stop()
	err := handler(srv, &limitedStream{ServerStream: ss, ctx: ctx})
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errShutdown) || errors.Is(cause, errLifetime) {
			return status.Error(codes.Unavailable, cause.Error())
		}
	}
	return err
}

type limitedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *limitedStream) Context() context.Context { return s.ctx }

// echoStream sends each message back until the client closes its side
// (OK), the call's context ends, or no message comes for --stream-idle-timeout
// (Unavailable).
func (g *grpcEcho) echoStream(stream grpc.ServerStream) error {
	ctx := stream.Context()
	msgs := make(chan *wrapperspb.StringValue)
	errc := make(chan error, 1)
	go func() { // ends when RecvMsg fails, at the latest when the call ends
		for {
			m := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(m); err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	var idle <-chan time.Time
	var t *time.Timer
	if g.idle > 0 {
		t = time.NewTimer(g.idle)
		defer t.Stop()
		idle = t.C
	}
	for {
		select {
		case m := <-msgs:
			if t != nil {
				t.Reset(g.idle)
			}
			if err := stream.SendMsg(m); err != nil {
				return err
			}
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-idle:
			return status.Errorf(codes.Unavailable, "no message for %s (--stream-idle-timeout)", g.idle)
		case <-ctx.Done():
			return status.FromContextError(context.Cause(ctx)).Err()
		}
	}
}
