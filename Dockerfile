# understudy, built from this repository (docker-compose.yml's "understudy" service).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/understudy ./cmd/understudy

# Static binary, no shell: every store is reached over the network.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/understudy /usr/local/bin/understudy
ENTRYPOINT ["/usr/local/bin/understudy"]
CMD ["sync", "--config", "/etc/understudy/understudy.yaml"]
