// Package deploy holds the connector's deployment artefacts, which are not
// Go: deploy/docker (the image), deploy/compose (a whole stack on one
// machine), deploy/k8s (Kubernetes manifests), deploy/prometheus and
// deploy/grafana (scraping and the dashboard), and deploy/local (the scripts
// behind make demo and make test).
//
// No container engine or cluster runs in CI, so validate_test.go checks
// them statically: every Kubernetes manifest decodes strictly into the
// k8s.io/api types, the compose file loads (and is schema-validated) with
// compose-go, every configuration they carry loads with
// connector.LoadConfig, and the dashboard queries only metrics the
// connector registers.
package deploy
