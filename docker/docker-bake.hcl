# Every image of the fleet in one build, from the repository root:
#
#   docker buildx bake -f docker/docker-bake.hcl --load          # into the local Docker
#
# The eight service images share docker/Dockerfile's build stage (it takes no build argument),
# so BuildKit compiles the workspace once for all of them. scripts/kind.sh images runs this
# command; CI runs it with a GitHub Actions cache:
#
#   CACHE_FROM=type=gha CACHE_TO=type=gha,mode=max docker buildx bake -f docker/docker-bake.hcl
#
# Each image reads and writes its own cache scope (one scope written by several images would
# keep only the last image's entry); the layers they share are stored once. mode=max keeps the
# intermediate stages too, the dependencies cargo-chef compiled above all.

variable "TAG" {
  default = "dev"
}

# A cache backend without its scope ("type=gha", say), or empty for no cache.
variable "CACHE_FROM" {
  default = ""
}

variable "CACHE_TO" {
  default = ""
}

# docker/Dockerfile's SERVICE values: the binaries, and the image of the kafka-topics Job.
variable "SERVICES" {
  default = ["gateway", "rental", "payment", "book-management", "user", "view", "points", "dev-broker"]
}

group "default" {
  targets = ["services", "siege"]
}

target "_common" {
  context    = "."
  dockerfile = "docker/Dockerfile"
}

target "services" {
  name       = svc
  inherits   = ["_common"]
  matrix     = { svc = SERVICES }
  target     = "service"
  args       = { SERVICE = svc }
  tags       = ["book-rental-fleet/${svc}:${TAG}"]
  cache-from = CACHE_FROM == "" ? [] : ["${CACHE_FROM},scope=${svc}"]
  cache-to   = CACHE_TO == "" ? [] : ["${CACHE_TO},scope=${svc}"]
}

target "siege" {
  inherits   = ["_common"]
  target     = "siege"
  tags       = ["book-rental-fleet/siege:${TAG}"]
  cache-from = CACHE_FROM == "" ? [] : ["${CACHE_FROM},scope=siege"]
  cache-to   = CACHE_TO == "" ? [] : ["${CACHE_TO},scope=siege"]
}
