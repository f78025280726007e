package deploy_test

// Static validation of the deployment artefacts. No container engine or
// cluster runs in CI, so these tests check what can be checked offline:
//
//   - deploy/k8s: every manifest decodes strictly (unknown or misspelled
//     fields fail) into the k8s.io/api types, and the invariants the
//     connector relies on hold (probes on /healthz at the metrics port,
//     non-root, read-only root with writable state, resources, one group
//     of replicas covered by the PodDisruptionBudget, the ConfigMap's
//     config loading with connector.LoadConfig, the Secret's keys being the
//     files the config names).
//   - deploy/compose: compose-go loads and schema-validates the file; the
//     services exist and the connector's mounted config and environment
//     load and point at the stack's Kafka, ClickHouse and Prometheus.
//   - deploy/grafana: every metric the dashboard queries is registered by
//     connector.NewMetrics, with the labels it has.
//   - deploy/docker: the Dockerfile's stages, user, entrypoint and port; its
//     ignore file keeps every file the build needs; the image's default
//     config loads.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/dpinstruct/dpinstruct/connector"
)

const (
	// imageConfig is where the image (and every deployment) keeps the
	// connector's configuration: the Dockerfile's CMD names it.
	imageConfig = "/etc/dpinstruct/config.yaml"
	// stateDir is the image's one writable place: spill files, checkpoints.
	stateDir = "/var/lib/dpinstruct"
)

// ---------------------------------------------------------------- helpers

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// configEnvNames is every DPINSTRUCT_* variable connector.LoadConfig reads,
// from connector.Config's env and envPrefix tags.
func configEnvNames() map[string]bool {
	names := map[string]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if p, ok := f.Tag.Lookup("envPrefix"); ok && f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+p)
				continue
			}
			if e, ok := f.Tag.Lookup("env"); ok {
				names[prefix+strings.Split(e, ",")[0]] = true
			}
		}
	}
	walk(reflect.TypeFor[connector.Config](), "DPINSTRUCT_")
	return names
}

// loadConfig writes raw to a temporary file and loads it with
// connector.LoadConfig under exactly env (every DPINSTRUCT_* variable of
// the test process is unset first: make test exports some). Call it in a
// subtest of its own; the environment is restored when that ends.
func loadConfig(t *testing.T, raw []byte, env map[string]string) (connector.Config, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DPINSTRUCT_") {
			t.Setenv(k, "") // restores the value when the test ends
			os.Unsetenv(k)
		}
	}
	valid := configEnvNames()
	for k, v := range env {
		if strings.HasPrefix(k, "DPINSTRUCT_") && !valid[k] {
			t.Errorf("environment variable %s names no configuration field", k)
		}
		t.Setenv(k, v)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return connector.LoadConfig(path)
}

func listenPort(t *testing.T, listen string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("observability.listen %q: %v", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("observability.listen %q: %v", listen, err)
	}
	return p
}

// checkContainerConfig holds for every configuration a container runs with.
func checkContainerConfig(t *testing.T, where string, cfg connector.Config) {
	t.Helper()
	if host, _, _ := net.SplitHostPort(cfg.Observability.Listen); host != "0.0.0.0" && host != "" {
		t.Errorf("%s: observability.listen %q: in a container it must bind 0.0.0.0 (loopback is unreachable from probes and Prometheus)", where, cfg.Observability.Listen)
	}
	for field, dir := range map[string]string{"window.spill_dir": cfg.Window.SpillDir, "processor.checkpoint_dir": cfg.Processor.CheckpointDir} {
		if !underDir(dir, stateDir) {
			t.Errorf("%s: %s %q is not under the state volume %s", where, field, dir, stateDir)
		}
	}
}

func underDir(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsAbs(path) && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ------------------------------------------------------------- Kubernetes

type manifests struct {
	files       []string
	namespace   *corev1.Namespace
	configMap   *corev1.ConfigMap
	secret      *corev1.Secret
	deployment  *appsv1.Deployment
	pdb         *policyv1.PodDisruptionBudget
	service     *corev1.Service
	namespaced  []metav1.Object
	objectNames []string
}

// decodeStrict decodes one manifest into its typed API struct: unknown and
// duplicate fields are errors, as are values of the wrong type.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Namespace":
		obj = &corev1.Namespace{}
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "apps/v1/Deployment":
		obj = &appsv1.Deployment{}
	case "policy/v1/PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	default:
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind this test knows; add it to decodeStrict", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests under deploy/k8s (%v)", err)
	}
	m := &manifests{}
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, filepath.Base(path))
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(readFile(t, path))))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			set := func(dst any, v any) {
				d := reflect.ValueOf(dst).Elem()
				if !d.IsNil() {
					t.Errorf("%s: a second %T; this test expects one", path, v)
				}
				d.Set(reflect.ValueOf(v))
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				set(&m.namespace, o)
			case *corev1.ConfigMap:
				set(&m.configMap, o)
				m.namespaced = append(m.namespaced, o)
			case *corev1.Secret:
				set(&m.secret, o)
				m.namespaced = append(m.namespaced, o)
			case *corev1.Service:
				set(&m.service, o)
				m.namespaced = append(m.namespaced, o)
			case *appsv1.Deployment:
				set(&m.deployment, o)
				m.namespaced = append(m.namespaced, o)
			case *policyv1.PodDisruptionBudget:
				set(&m.pdb, o)
				m.namespaced = append(m.namespaced, o)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for name, v := range map[string]any{"Namespace": m.namespace, "ConfigMap": m.configMap, "Secret": m.secret,
		"Deployment": m.deployment, "PodDisruptionBudget": m.pdb, "Service": m.service} {
		if reflect.ValueOf(v).IsNil() {
			t.Errorf("deploy/k8s has no %s", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(doc)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}

// TestStrictDecodingRejectsTypos proves the schema check bites: a
// misspelled field, a wrong type and a bad quantity all fail.
func TestStrictDecodingRejectsTypos(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"wrong type":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: three\n",
		"unknown kind":     "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"nested typo": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n" +
			"      containers:\n      - name: c\n        livenesProbe: {}\n",
		"bad resource": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n" +
			"      containers:\n      - name: c\n        resources: {requests: {cpu: two}}\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)

	// Every object lives in the Namespace the manifests create.
	for _, o := range m.namespaced {
		if o.GetNamespace() != m.namespace.Name {
			t.Errorf("%T %s: namespace %q, want %q", o, o.GetName(), o.GetNamespace(), m.namespace.Name)
		}
	}
	if m.namespace.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("Namespace %s does not enforce the restricted Pod Security Standard", m.namespace.Name)
	}

	// kustomization.yaml applies every manifest, and nothing else.
	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "k8s/kustomization.yaml"), &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if kust.Kind != "Kustomization" || kust.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("kustomization.yaml: %s %s", kust.APIVersion, kust.Kind)
	}
	res := slices.Clone(kust.Resources)
	sort.Strings(res)
	if !slices.Equal(res, m.files) {
		t.Errorf("kustomization.yaml resources %v, want the manifests %v", res, m.files)
	}

	d := m.deployment
	pod := d.Spec.Template.Spec
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("Deployment replicas: want 3")
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("Deployment selector: %v (empty: %v)", err, sel == nil || sel.Empty())
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	if !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %s does not match its pod labels %v", sel, podLabels)
	}

	// PodDisruptionBudget: one replica at a time, over exactly these pods.
	pdbSel, err := metav1.LabelSelectorAsSelector(m.pdb.Spec.Selector)
	if err != nil || pdbSel.Empty() || !pdbSel.Matches(podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the Deployment's pod labels %v (%v)", pdbSel, podLabels, err)
	}
	if mu := m.pdb.Spec.MaxUnavailable; mu == nil || *mu != intstr.FromInt32(1) {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", mu)
	}
	if m.pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget sets minAvailable too")
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The container runs the image's entrypoint with the mounted config.
	if len(c.Command) != 0 {
		t.Errorf("container command %v overrides the image's ENTRYPOINT", c.Command)
	}
	if !slices.Equal(c.Args, []string{"run", "--config", imageConfig}) {
		t.Errorf("container args %v, want run --config %s", c.Args, imageConfig)
	}
	if img := strings.SplitN(c.Image, ":", 2)[0]; !slices.ContainsFunc(kust.Images, func(i struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	}) bool {
		return i.Name == img
	}) {
		t.Errorf("kustomization.yaml images: does not rewrite the Deployment's image %s", img)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("volumeMount %s names no volume %q", vm.MountPath, vm.Name)
		}
	}

	// The ConfigMap's config.yaml is the file --config names.
	cfgMount, ok := mounts[filepath.Dir(imageConfig)]
	if !ok {
		t.Fatalf("nothing mounted at %s", filepath.Dir(imageConfig))
	}
	cmVol := volumes[cfgMount.Name].ConfigMap
	if cmVol == nil || cmVol.Name != m.configMap.Name {
		t.Fatalf("%s: not the ConfigMap %s", cfgMount.MountPath, m.configMap.Name)
	}
	key := filepath.Base(imageConfig)
	if len(cmVol.Items) > 0 {
		key = ""
		for _, it := range cmVol.Items {
			if filepath.Join(cfgMount.MountPath, it.Path) == imageConfig {
				key = it.Key
			}
		}
	}
	rawConfig, ok := m.configMap.Data[key]
	if key == "" || !ok {
		t.Fatalf("ConfigMap %s has no key mounted at %s", m.configMap.Name, imageConfig)
	}

	// The Secret's keys are exactly the files the config reads.
	secMount, secVol := "", (*corev1.SecretVolumeSource)(nil)
	for _, vm := range c.VolumeMounts {
		if s := volumes[vm.Name].Secret; s != nil && s.SecretName == m.secret.Name {
			secMount, secVol = vm.MountPath, s
			if !vm.ReadOnly {
				t.Errorf("Secret mount %s is not readOnly", vm.MountPath)
			}
		}
	}
	if secVol == nil {
		t.Fatalf("Secret %s is not mounted", m.secret.Name)
	}
	if len(secVol.Items) > 0 {
		t.Fatalf("Secret volume lists items; this test expects every key as a file")
	}
	if secVol.DefaultMode == nil || *secVol.DefaultMode&0o007 != 0 {
		t.Errorf("Secret volume defaultMode must be set and give others no access")
	}
	secretValues := map[string]string{}
	for k, v := range m.secret.StringData {
		secretValues[k] = v
	}
	for k, v := range m.secret.Data {
		secretValues[k] = string(v)
	}

	// Env: the instance name from the pod name; nothing unknown.
	env := map[string]string{}
	instanceFromPod := false
	for _, e := range c.Env {
		if e.Name == "DPINSTRUCT_INSTANCE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			instanceFromPod = true
			env[e.Name] = "dpinstruct-5d8c7b9f4-x2x7q"
			continue
		}
		if e.ValueFrom != nil {
			t.Errorf("env %s: a valueFrom this test cannot resolve", e.Name)
			continue
		}
		env[e.Name] = e.Value
	}
	if !instanceFromPod {
		t.Errorf("DPINSTRUCT_INSTANCE does not come from the pod's name (fieldRef metadata.name)")
	}
	if len(c.EnvFrom) > 0 {
		t.Errorf("envFrom hides which DPINSTRUCT_* variables the connector gets")
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("enableServiceLinks must be false: service links inject DPINSTRUCT_* variables")
	}

	// The config loads with the Secret's placeholder values in place.
	var cfg connector.Config
	t.Run("configmap config loads", func(t *testing.T) {
		tmp := t.TempDir()
		for k, v := range secretValues {
			if err := os.WriteFile(filepath.Join(tmp, k), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		raw := strings.ReplaceAll(rawConfig, secMount+"/", tmp+"/")
		loaded, err := loadConfig(t, []byte(raw), env)
		if err != nil {
			t.Fatalf("ConfigMap %s: %v", m.configMap.Name, err)
		}
		files := map[string]string{
			"kafka.sasl.password_file": loaded.Kafka.SASL.PasswordFile, "clickhouse.dsn_file": loaded.ClickHouse.DSNFile,
			"kafka.tls.ca_file": loaded.Kafka.TLS.CAFile, "kafka.tls.cert_file": loaded.Kafka.TLS.CertFile,
			"kafka.tls.key_file": loaded.Kafka.TLS.KeyFile,
		}
		named := map[string]bool{}
		for field, f := range files {
			if f == "" {
				continue
			}
			k, ok := strings.CutPrefix(f, tmp+"/")
			if !ok {
				t.Errorf("%s %q is not in the Secret's mount %s", field, f, secMount)
				continue
			}
			if _, ok := secretValues[k]; !ok {
				t.Errorf("%s names %s/%s; Secret %s has no key %q", field, secMount, k, m.secret.Name, k)
			}
			named[k] = true
		}
		for k := range secretValues {
			if !named[k] {
				t.Errorf("Secret key %q is not a file the config reads", k)
			}
		}
		if string(loaded.Kafka.SASL.Password) != strings.TrimSpace(secretValues["kafka-sasl-password"]) {
			t.Errorf("kafka.sasl.password did not come from the Secret")
		}
		if loaded.ClickHouse.DSN != strings.TrimSpace(secretValues["clickhouse-dsn"]) {
			t.Errorf("clickhouse.dsn did not come from the Secret")
		}
		if loaded.Instance != env["DPINSTRUCT_INSTANCE"] {
			t.Errorf("instance %q, want the pod name", loaded.Instance)
		}
		cfg = loaded
	})
	if cfg.Observability.Listen == "" {
		t.FailNow()
	}
	checkContainerConfig(t, "ConfigMap", cfg)

	// The metrics port: the container's port named "metrics" is the port
	// observability.listen binds.
	port := listenPort(t, cfg.Observability.Listen)
	var metricsPort *corev1.ContainerPort
	for i, p := range c.Ports {
		if p.Name == "metrics" {
			metricsPort = &c.Ports[i]
		}
	}
	if metricsPort == nil || int(metricsPort.ContainerPort) != port {
		t.Fatalf("container port \"metrics\" %v, want %d (observability.listen)", metricsPort, port)
	}
	resolves := func(p intstr.IntOrString) bool {
		if p.Type == intstr.String {
			return p.StrVal == metricsPort.Name
		}
		return int(p.IntVal) == port
	}

	// Probes: liveness and readiness (and startup) on /healthz.
	for name, p := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
		if p == nil {
			if name != "startupProbe" {
				t.Errorf("%s missing", name)
			}
			continue
		}
		if p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || !resolves(p.HTTPGet.Port) {
			t.Errorf("%s: want httpGet /healthz on the metrics port, got %+v", name, p.ProbeHandler)
		}
	}

	// Security: non-root, no privilege escalation, no capabilities,
	// read-only root, the runtime's seccomp profile.
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil {
		t.Fatalf("pod and container securityContext must be set")
	}
	nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		t.Errorf("runAsNonRoot is not true")
	}
	for _, uid := range []*int64{psc.RunAsUser, csc.RunAsUser} {
		if uid != nil && *uid == 0 {
			t.Errorf("runAsUser 0")
		}
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation must be false")
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem must be true")
	}
	if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities: must drop ALL and add none")
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Errorf("privileged container")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile must be RuntimeDefault (restricted Pod Security Standard)")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken must be false: the connector never calls the API server")
	}

	// Writable places under the read-only root: the state directory (spill
	// files, checkpoints) and /tmp (the base model is extracted there).
	writable := func(dir string) bool {
		best := ""
		for path := range mounts {
			if (dir == path || underDir(dir, path)) && len(path) > len(best) {
				best = path
			}
		}
		if best == "" {
			return false
		}
		vm := mounts[best]
		return !vm.ReadOnly && volumes[vm.Name].EmptyDir != nil
	}
	for _, dir := range []string{cfg.Window.SpillDir, cfg.Processor.CheckpointDir, stateDir, "/tmp"} {
		if !writable(dir) {
			t.Errorf("%s is not on a writable emptyDir mount", dir)
		}
	}

	// Resources: requests for the CPU generator, limits no lower.
	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q, ok := req[r]
		if !ok || q.Sign() <= 0 {
			t.Errorf("resources.requests.%s not set", r)
			continue
		}
		if l, ok := lim[r]; ok && l.Cmp(q) < 0 {
			t.Errorf("resources.limits.%s %s below the request %s", r, l.String(), q.String())
		}
	}
	if q := req[corev1.ResourceCPU]; q.MilliValue() < 2000 {
		t.Errorf("resources.requests.cpu %s: the DP generator wants 2 cores", q.String())
	}
	if q := req[corev1.ResourceMemory]; q.Value() < 2<<30 {
		t.Errorf("resources.requests.memory %s: want at least 2Gi", q.String())
	}
	if _, ok := lim[corev1.ResourceMemory]; !ok {
		t.Errorf("resources.limits.memory not set")
	}

	// SIGTERM gets shutdown_timeout to finish a window; the kubelet must
	// not kill the pod before.
	grace := pod.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds must exceed shutdown_timeout %s", cfg.ShutdownTimeout)
	}

	// Service: ClusterIP, over the same pods, to the metrics port.
	svc := m.service
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s type %q, want ClusterIP", svc.Name, svc.Spec.Type)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("Service selector %v does not match the pods %v", svc.Spec.Selector, podLabels)
	}
	if len(svc.Spec.Ports) != 1 || !resolves(svc.Spec.Ports[0].TargetPort) {
		t.Errorf("Service ports %+v: want one, to the metrics port", svc.Spec.Ports)
	}
	if a := d.Spec.Template.Annotations; a["prometheus.io/port"] != strconv.Itoa(port) || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod prometheus.io annotations %v do not point at /metrics on %d", a, port)
	}
}

// ----------------------------------------------------------------- compose

func TestCompose(t *testing.T) {
	dir, err := filepath.Abs("compose")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "compose.yaml")
	// An empty environment: interpolation takes the file's own defaults,
	// whatever the machine running the test has set.
	proj, err := loader.LoadWithContext(context.Background(), composetypes.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []composetypes.ConfigFile{{Filename: file}},
		Environment: composetypes.Mapping{},
	}, loader.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if proj.Name != "dpinstruct" {
		t.Errorf("project name %q", proj.Name)
	}
	for _, name := range []string{"kafka", "kafka-init", "clickhouse", "dpinstruct", "produce", "prometheus", "grafana"} {
		if _, ok := proj.Services[name]; !ok {
			t.Errorf("compose.yaml: no service %q", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	root, _ := filepath.Abs("..")

	// Every bind mount's source exists (the demo's data set aside: it lives
	// outside the repository).
	for name, s := range proj.Services {
		for _, v := range s.Volumes {
			if v.Type != composetypes.VolumeTypeBind || name == "produce" {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s: bind source %s: %v", name, v.Source, err)
			}
		}
	}

	// Kafka runs in KRaft mode: broker and controller, no ZooKeeper.
	kafka := proj.Services["kafka"]
	envOf := func(s composetypes.ServiceConfig) map[string]string {
		out := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				out[k] = *v
			}
		}
		return out
	}
	kenv := envOf(kafka)
	if kenv["KAFKA_PROCESS_ROLES"] != "broker,controller" || kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "" {
		t.Errorf("kafka: not a KRaft single node (KAFKA_PROCESS_ROLES %q)", kenv["KAFKA_PROCESS_ROLES"])
	}
	for k := range kenv {
		if strings.Contains(strings.ToLower(k), "zookeeper") {
			t.Errorf("kafka: %s: KRaft needs no ZooKeeper", k)
		}
	}

	// The connector: built from the Dockerfile at the repository root.
	svc := proj.Services["dpinstruct"]
	if svc.Build == nil {
		t.Fatalf("dpinstruct: no build section")
	}
	if filepath.Clean(svc.Build.Context) != root {
		t.Errorf("dpinstruct: build context %s, want the repository root %s", svc.Build.Context, root)
	}
	dockerfile := svc.Build.Dockerfile
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(svc.Build.Context, dockerfile)
	}
	if want, _ := filepath.Abs("docker/Dockerfile"); dockerfile != want {
		t.Errorf("dpinstruct: dockerfile %s, want %s", dockerfile, want)
	}
	if svc.Image != proj.Services["produce"].Image {
		t.Errorf("produce uses image %q, the connector builds %q", proj.Services["produce"].Image, svc.Image)
	}
	if len(svc.Ports) > 0 {
		t.Errorf("dpinstruct publishes ports %v: its metrics stay on the private network", svc.Ports)
	}
	if svc.User == "" || strings.HasPrefix(svc.User, "0") || svc.User == "root" {
		t.Errorf("dpinstruct: user %q, want the image's non-root user", svc.User)
	}
	if !svc.ReadOnly || !slices.Contains(svc.CapDrop, "ALL") {
		t.Errorf("dpinstruct: want read_only and cap_drop ALL")
	}
	if !slices.ContainsFunc(svc.Tmpfs, func(s string) bool { return strings.HasPrefix(s, "/tmp") }) {
		t.Errorf("dpinstruct: read_only needs a tmpfs on /tmp (the base model is extracted there)")
	}
	for dep, cond := range map[string]string{"kafka-init": composetypes.ServiceConditionCompletedSuccessfully, "clickhouse": composetypes.ServiceConditionHealthy} {
		if got := svc.DependsOn[dep].Condition; got != cond {
			t.Errorf("dpinstruct depends_on %s: condition %q, want %q", dep, got, cond)
		}
	}
	if len(svc.Command) > 0 && !slices.Equal(svc.Command, []string{"run", "--config", imageConfig}) {
		t.Errorf("dpinstruct: command %v, want run --config %s", svc.Command, imageConfig)
	}

	// Its config: the mounted file plus the service's DPINSTRUCT_* env.
	var cfgFile string
	stateVolume := false
	for _, v := range svc.Volumes {
		switch {
		case v.Target == imageConfig:
			if v.Type != composetypes.VolumeTypeBind || !v.ReadOnly {
				t.Errorf("dpinstruct: %s must be a read-only bind mount", imageConfig)
			}
			cfgFile = v.Source
		case v.Target == stateDir:
			stateVolume = v.Type == composetypes.VolumeTypeVolume && !v.ReadOnly
		}
	}
	if cfgFile == "" {
		t.Fatalf("dpinstruct: nothing mounted at %s", imageConfig)
	}
	if !stateVolume {
		t.Errorf("dpinstruct: %s is not a writable named volume", stateDir)
	}
	var cfg connector.Config
	t.Run("connector config loads", func(t *testing.T) {
		env := envOf(svc)
		for k := range env {
			if !strings.HasPrefix(k, "DPINSTRUCT_") {
				t.Errorf("dpinstruct: environment %s is not a connector setting", k)
			}
		}
		loaded, err := loadConfig(t, readFile(t, cfgFile), env)
		if err != nil {
			t.Fatalf("%s with the service's environment: %v", cfgFile, err)
		}
		cfg = loaded
	})
	if cfg.Observability.Listen == "" {
		t.FailNow()
	}
	checkContainerConfig(t, "compose connector", cfg)
	if !strings.HasPrefix(cfg.Instance, "dpinstruct-") {
		t.Errorf("dpinstruct: instance %q: give it a stable name (DPINSTRUCT_INSTANCE)", cfg.Instance)
	}
	if advertised := kenv["KAFKA_ADVERTISED_LISTENERS"]; !slices.ContainsFunc(cfg.Kafka.Brokers, func(b string) bool {
		return strings.Contains(advertised, "://"+b)
	}) {
		t.Errorf("kafka.brokers %v: none is one of kafka's advertised listeners %q", cfg.Kafka.Brokers, advertised)
	}
	if !strings.Contains(cfg.ClickHouse.DSN, "@clickhouse:9000/") {
		t.Errorf("clickhouse.dsn does not point at the clickhouse service's native port")
	}
	chenv := envOf(proj.Services["clickhouse"])
	if user := chenv["CLICKHOUSE_USER"]; !strings.HasPrefix(cfg.ClickHouse.DSN, "clickhouse://"+user+":"+chenv["CLICKHOUSE_PASSWORD"]+"@") {
		t.Errorf("clickhouse.dsn's user and password are not the clickhouse service's CLICKHOUSE_USER/PASSWORD")
	}
	if !strings.HasSuffix(cfg.ClickHouse.DSN, "/"+chenv["CLICKHOUSE_DB"]) {
		t.Errorf("clickhouse.dsn's database is not CLICKHOUSE_DB %q", chenv["CLICKHOUSE_DB"])
	}
	initCmd := strings.Join(proj.Services["kafka-init"].Command, " ")
	for _, topic := range []string{cfg.Kafka.Topic, cfg.Kafka.DeadLetterTopic} {
		if !strings.Contains(initCmd, " "+topic+" ") && !strings.Contains(initCmd, " "+topic+";") {
			t.Errorf("kafka-init does not create topic %q", topic)
		}
	}
	port := listenPort(t, cfg.Observability.Listen)
	if !slices.Contains(svc.Expose, strconv.Itoa(port)) {
		t.Errorf("dpinstruct: expose %v lacks the metrics port %d", svc.Expose, port)
	}

	// Prometheus scrapes the connector's service name at that port.
	prom := proj.Services["prometheus"]
	var promFile string
	for _, v := range prom.Volumes {
		if v.Target == "/etc/prometheus/prometheus.yml" {
			promFile = v.Source
		}
	}
	if want, _ := filepath.Abs("prometheus/prometheus.yml"); promFile != want {
		t.Fatalf("prometheus: config mounted from %q, want %s", promFile, want)
	}
	var pcfg struct {
		Global        map[string]string `json:"global"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, promFile), &pcfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	target := fmt.Sprintf("dpinstruct:%d", port)
	scraped := false
	for _, sc := range pcfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, target) && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus.yml does not scrape %s/metrics", target)
	}

	// Grafana: provisioning and dashboards mounted where the provisioning
	// files say, datasource uid the one the dashboard uses.
	graf := proj.Services["grafana"]
	gm := map[string]string{}
	for _, v := range graf.Volumes {
		gm[v.Target] = v.Source
	}
	if want, _ := filepath.Abs("grafana/provisioning"); gm["/etc/grafana/provisioning"] != want {
		t.Errorf("grafana: /etc/grafana/provisioning from %q, want %s", gm["/etc/grafana/provisioning"], want)
	}
	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			OrgID                 int    `json:"orgId"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "grafana/provisioning/dashboards/dpinstruct.yaml"), &prov); err != nil {
		t.Fatalf("grafana dashboard provisioning: %v", err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("grafana dashboard provisioning: want one file provider")
	}
	if want, _ := filepath.Abs("grafana/dashboards"); gm[prov.Providers[0].Options.Path] != want {
		t.Errorf("grafana: the provider reads %s, where %s is not mounted", prov.Providers[0].Options.Path, want)
	}
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string `json:"name"`
			UID       string `json:"uid"`
			Type      string `json:"type"`
			Access    string `json:"access"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault"`
			Editable  bool   `json:"editable"`
		} `json:"datasources"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "grafana/provisioning/datasources/prometheus.yaml"), &ds); err != nil {
		t.Fatalf("grafana datasource provisioning: %v", err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID != dashboardDatasourceUID {
		t.Errorf("grafana datasource: want one prometheus datasource with uid %q", dashboardDatasourceUID)
	} else if u := ds.Datasources[0].URL; u != "http://prometheus:9090" {
		t.Errorf("grafana datasource url %q, want the prometheus service", u)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		for _, p := range proj.Services[name].Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes port %d on %q: bind 127.0.0.1", name, p.Target, p.HostIP)
			}
		}
	}
}

// --------------------------------------------------------------- dashboard

const dashboardDatasourceUID = "prometheus"

// knownMetrics is every series name the connector's /metrics can show,
// with its label names: connector.NewMetrics's exported collectors plus
// the Go and process collectors it registers. Histograms and summaries add
// their _bucket, _sum and _count series.
func knownMetrics(t *testing.T) map[string][]string {
	t.Helper()
	known := map[string][]string{"up": {"job", "instance"}} // Prometheus's own
	descRe := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	add := func(c prometheus.Collector, histogram bool) {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRe.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			var ls []string
			for l := range strings.SplitSeq(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					ls = append(ls, l)
				}
			}
			known[m[1]] = ls
			if histogram {
				known[m[1]+"_bucket"] = append(slices.Clone(ls), "le")
				known[m[1]+"_sum"], known[m[1]+"_count"] = ls, ls
			}
		}
	}
	mv := reflect.ValueOf(connector.NewMetrics()).Elem()
	n := 0
	for i := range mv.NumField() {
		f := mv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		c, ok := mv.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		_, h1 := c.(prometheus.Histogram)
		_, h2 := c.(*prometheus.HistogramVec)
		add(c, h1 || h2)
		n++
	}
	if n < 9 {
		t.Fatalf("found %d collectors in connector.Metrics", n)
	}
	// The Go and process collectors, as NewMetrics registers them; their
	// summaries and histograms are found by gathering.
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		add(c, false)
		reg.MustRegister(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetType().String() {
		case "HISTOGRAM":
			known[mf.GetName()+"_bucket"] = []string{"le"}
			fallthrough
		case "SUMMARY":
			known[mf.GetName()+"_sum"], known[mf.GetName()+"_count"] = nil, nil
			if mf.GetType().String() == "SUMMARY" {
				known[mf.GetName()] = []string{"quantile"}
			}
		}
	}
	return known
}

// exprs returns every PromQL expression of the dashboard (panel targets and
// template variable queries), each with where it is.
func dashboardExprs(t *testing.T, dash map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(any, string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = title
			}
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || (k == "query" && strings.Contains(s, "("))) {
					out[where+": "+s] = s
				}
				if ds, ok := x.(map[string]any); ok && k == "datasource" {
					if uid, _ := ds["uid"].(string); ds["type"] == "prometheus" && uid != dashboardDatasourceUID {
						t.Errorf("%s: datasource uid %q, want %q (provisioned)", where, uid, dashboardDatasourceUID)
					}
				}
				walk(x, where)
			}
		case []any:
			for _, x := range v {
				walk(x, where)
			}
		}
	}
	walk(dash, "dashboard")
	return out
}

func TestDashboardMetrics(t *testing.T) {
	var dash map[string]any
	if err := json.Unmarshal(readFile(t, "grafana/dashboards/dpinstruct.json"), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash["uid"] == "" || dash["title"] == "" {
		t.Errorf("dashboard: no uid or title")
	}
	known := knownMetrics(t)
	exprs := dashboardExprs(t, dash)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d queries", len(exprs))
	}
	// A series name: an identifier of the families the connector exports,
	// optionally followed by a {selector}.
	seriesRe := regexp.MustCompile(`\b((?:dpinstruct|go|process|up)(?:_[a-zA-Z0-9_]+)?)\b(\{[^}]*\})?`)
	labelRe := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	targetLabels := map[string]bool{"job": true, "instance": true}
	used := map[string]bool{}
	for where, e := range exprs {
		// $__rate_interval, $job and the like are Grafana's, not series.
		clean := regexp.MustCompile(`\$\{?[a-zA-Z_]+\}?`).ReplaceAllString(e, "x")
		matches := seriesRe.FindAllStringSubmatch(clean, -1)
		if len(matches) == 0 {
			t.Errorf("%s: queries no connector metric", where)
		}
		for _, m := range matches {
			name := m[1]
			if name == "go" || name == "process" {
				continue
			}
			lbls, ok := known[name]
			if !ok {
				t.Errorf("%s: metric %s is not registered by connector.NewMetrics", where, name)
				continue
			}
			used[name] = true
			for _, lm := range labelRe.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(lbls, lm[1]) && !targetLabels[lm[1]] {
					t.Errorf("%s: %s has no label %q (it has %v)", where, name, lm[1], lbls)
				}
			}
		}
	}
	// Every connector metric is on the dashboard somewhere.
	for name := range known {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !strings.HasPrefix(name, "dpinstruct_") || used[name] || used[base] || used[base+"_bucket"] || used[base+"_sum"] || used[base+"_count"] {
			continue
		}
		t.Errorf("metric %s is not on the dashboard", name)
	}
}

// ------------------------------------------------------------------ docker

type dockerInstr struct {
	cmd, args string
	line      int
}

// parseDockerfile returns the instructions (continuations joined, comments
// and parser directives dropped), grouped by stage.
func parseDockerfile(t *testing.T, raw string) [][]dockerInstr {
	t.Helper()
	var stages [][]dockerInstr
	var cur strings.Builder
	start := 0
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args), start}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before FROM", start, in.cmd)
			}
			return
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	for i, line := range strings.Split(raw, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func jsonArray(t *testing.T, in dockerInstr) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(in.args), &out); err != nil {
		t.Errorf("Dockerfile line %d: %s must use the exec (JSON) form: %v", in.line, in.cmd, err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, string(readFile(t, "docker/Dockerfile")))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	from := func(st []dockerInstr) string { return strings.Fields(st[0].args)[0] }
	if !strings.HasPrefix(from(build), "golang:") {
		t.Errorf("build stage FROM %s, want golang", from(build))
	}
	var buildText strings.Builder
	for _, in := range build {
		buildText.WriteString(in.cmd + " " + in.args + "\n")
	}
	for _, want := range []string{"GOEXPERIMENT=simd", "CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/dpinstruct"} {
		if !strings.Contains(buildText.String(), want) {
			t.Errorf("build stage lacks %s", want)
		}
	}
	base := from(final)
	distrolessNonroot := strings.HasPrefix(base, "gcr.io/distroless/") && strings.HasSuffix(base, ":nonroot")
	if !distrolessNonroot && base != "scratch" {
		t.Errorf("final stage FROM %s: want distroless :nonroot or scratch", base)
	}
	user, entry, cmd, exposed, volumes := "", []string(nil), []string(nil), []string(nil), []string(nil)
	copied := map[string]string{}
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = jsonArray(t, in)
		case "CMD":
			cmd = jsonArray(t, in)
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "VOLUME":
			volumes = append(volumes, jsonArray(t, in)...)
		case "COPY":
			var f []string
			for _, a := range strings.Fields(in.args) {
				if !strings.HasPrefix(a, "--") {
					f = append(f, a)
				}
			}
			if len(f) == 2 && !strings.Contains(in.args, "--from=") {
				copied[f[1]] = f[0]
			}
		case "RUN":
			if base == "scratch" || strings.HasPrefix(base, "gcr.io/distroless/") {
				t.Errorf("Dockerfile line %d: RUN in a final stage without a shell", in.line)
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); user == "" && !distrolessNonroot || uid == "0" || uid == "root" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if !slices.Equal(entry, []string{"/dpinstruct"}) {
		t.Errorf("ENTRYPOINT %v, want [/dpinstruct]", entry)
	}
	if !slices.Equal(cmd, []string{"run", "--config", imageConfig}) {
		t.Errorf("CMD %v, want [run --config %s]", cmd, imageConfig)
	}
	if !slices.Contains(volumes, stateDir) {
		t.Errorf("VOLUME %v lacks %s", volumes, stateDir)
	}

	// The image's own config loads and matches the image.
	src, ok := copied[imageConfig]
	if !ok {
		t.Fatalf("the final stage copies no file to %s", imageConfig)
	}
	raw := readFile(t, filepath.Join("..", src))
	var cfg connector.Config
	t.Run("image config loads", func(t *testing.T) {
		loaded, err := loadConfig(t, raw, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		cfg = loaded
	})
	if cfg.Observability.Listen == "" {
		t.FailNow()
	}
	checkContainerConfig(t, src, cfg)
	if p := strconv.Itoa(listenPort(t, cfg.Observability.Listen)); !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
		t.Errorf("EXPOSE %v lacks the metrics port %s", exposed, p)
	}
}

// dockerignore is the subset of .dockerignore syntax the file uses:
// patterns (with *, ? and **) and ! exceptions, the last match winning; a
// pattern that matches a directory excludes everything under it.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(raw string) dockerignore {
	var ig dockerignore
	for line := range strings.Lines(raw) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = strings.Trim(filepath.Clean(strings.TrimPrefix(p, "!")), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("(/.*)?$")
		ig = append(ig, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return ig
}

func (ig dockerignore) excluded(path string) bool {
	out := false
	for _, p := range ig {
		if p.re.MatchString(path) {
			out = !p.negate
		}
	}
	return out
}

// TestDockerignoreKeepsTheBuild: every file `go build ./cmd/dpinstruct`
// needs stays in the build context: go.mod, go.sum, every non-test Go
// file outside deploy/, everything they //go:embed, and what the final
// stage copies from the context.
func TestDockerignoreKeepsTheBuild(t *testing.T) {
	ig := parseDockerignore(string(readFile(t, "docker/Dockerfile.dockerignore")))
	if !ig.excluded(".git") || !ig.excluded("models/base/model/optimizer.safetensors") || !ig.excluded("connector/x_test.go") {
		t.Errorf("the ignore file keeps .git, the optimizer state or tests: the context grows for nothing")
	}
	need := []string{"go.mod", "go.sum", "deploy/docker/config.yaml"}
	embedRe := regexp.MustCompile(`(?m)^//go:embed (.+)$`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "bin" || rel == "deploy" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		need = append(need, rel)
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range embedRe.FindAllStringSubmatch(string(raw), -1) {
			for _, pat := range strings.Fields(m[1]) {
				files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), pat))
				if len(files) == 0 {
					t.Errorf("%s: //go:embed %s matches nothing", rel, pat)
				}
				for _, f := range files {
					r, _ := filepath.Rel("..", f)
					need = append(need, filepath.ToSlash(r))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range need {
		if ig.excluded(f) {
			t.Errorf("Dockerfile.dockerignore excludes %s, which the build needs", f)
		}
	}
}
