# syntax=docker/dockerfile:1
# The flotilla image for people who have Docker (or BuildKit, Podman, Kaniko). It is the same
# image hack/mkimage builds without Docker (`make images`, docs/images.md): a static binary,
# CA certificates, users root/nobody/nonroot, running as 65532, entrypoint /flotilla.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=v2 --build-arg REVISION=$(git rev-parse --short=12 HEAD) \
#     -t ghcr.io/flotilla-dev/flotilla:v2 .
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=v1
ARG REVISION=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The flags of hack/mkimage's go build: static, no paths, no VCS stamp (the revision is in ldflags).
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/flotilla-dev/flotilla/internal/buildinfo.version=${VERSION} \
                -X github.com/flotilla-dev/flotilla/internal/buildinfo.revision=${REVISION}" \
      -o /out/flotilla ./cmd/flotilla
# The base layer: what hack/mkimage's baseEntries puts in.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/home/nonroot /rootfs/tmp \
 && printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >/rootfs/etc/passwd \
 && printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >/rootfs/etc/group \
 && printf 'hosts: files dns\n' >/rootfs/etc/nsswitch.conf \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chown 65532:65532 /rootfs/home/nonroot && chmod 700 /rootfs/home/nonroot && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=v1
ARG REVISION=unknown
COPY --from=build /rootfs/ /
COPY --from=build /out/flotilla /flotilla
USER 65532:65532
ENV PATH=/
WORKDIR /
ENTRYPOINT ["/flotilla"]
LABEL org.opencontainers.image.title="flotilla" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/flotilla-dev/flotilla"
