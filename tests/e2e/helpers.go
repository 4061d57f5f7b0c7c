package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// MarkPodsReady plays the kubelet: every pod matching selector in ns that is not
// yet Running and Ready gets, through the status subresource, phase Running, a
// startTime, Ready container statuses and the PodScheduled / Initialized /
// ContainersReady / Ready conditions (the HPA counts Running+Ready pods).
// Pods being deleted are skipped. Returns how many pods it changed.
func (c *Cluster) MarkPodsReady(ctx context.Context, ns, selector string) (int, error) {
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, err
	}
	changed := 0
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || podRunningReady(pod) {
			continue
		}
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &now
		}
		pod.Status.HostIP = "127.0.0.1"
		pod.Status.PodIP = "127.0.0.1"
		pod.Status.Conditions = nil
		for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
				Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now,
			})
		}
		pod.Status.ContainerStatuses = nil
		for _, ctr := range pod.Spec.Containers {
			started := true
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
				Name:    ctr.Name,
				Image:   ctr.Image,
				ImageID: "docker-pullable://" + ctr.Image,
				Ready:   true,
				Started: &started,
				State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		if _, err := c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				continue // deleted or changed meanwhile: the next call sees it again
			}
			return changed, fmt.Errorf("mark pod %s/%s ready: %w", ns, pod.Name, err)
		}
		changed++
	}
	return changed, nil
}

func podRunningReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// KeepPodsReady runs MarkPodsReady every interval (default 200 ms) until the
// returned stop function is called (also registered with t.Cleanup), so pods a
// scale-up creates become Ready within a fraction of a second.
func (c *Cluster) KeepPodsReady(ns, selector string, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			_, _ = c.MarkPodsReady(cctx, ns, selector) // errors (apiserver restarting) are retried
			ccancel()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var once bool
	stop = func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	c.t.Cleanup(stop)
	return stop
}

// Kubectl runs kubectl with the admin kubeconfig (60 s limit) and returns stdout;
// the error includes stderr.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlAs(ctx, c.AdminKubeconfig, args...)
}

// KubectlAs runs kubectl with the given kubeconfig (60 s limit).
func (c *Cluster) KubectlAs(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, KubectlPath(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// KubectlPath is $KUBECTL, else kubectl on PATH, else the one scripts/setup
// builds into build/bin.
func KubectlPath() string {
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "build", "bin", "kubectl")); err == nil {
		return p
	}
	return "kubectl"
}

// HelmPath is $HELM, else helm on PATH, else the one scripts/setup builds into
// build/bin (Debian has no helm package).
func HelmPath() string {
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "build", "bin", "helm")); err == nil {
		return p
	}
	return "helm"
}

// APIServiceRegistration points an aggregated group version at a server on loopback.
type APIServiceRegistration struct {
	Group, Version   string
	ServiceNamespace string // created if missing
	ServiceName      string
	Port             int    // the server's loopback port; the aggregator dials localhost:<Port>
	CABundle         []byte // PEM CA that signed the server's certificate for <ServiceName>.<ServiceNamespace>.svc
	// InsecureSkipTLSVerify instead of CABundle.
	InsecureSkipTLSVerify bool
}

// APIServiceName is "<version>.<group>", the APIService object's name.
func (r APIServiceRegistration) APIServiceName() string { return r.Version + "." + r.Group }

// RegisterAPIService creates (or updates) a Service of type ExternalName with
// externalName "localhost" and an APIService whose service.port is the server's
// real port. With --enable-aggregator-routing=false the aggregator resolves an
// ExternalName service to https://<externalName>:<APIService port> and verifies
// the server certificate for "<service>.<namespace>.svc" against caBundle.
func (c *Cluster) RegisterAPIService(ctx context.Context, r APIServiceRegistration) error {
	if err := c.EnsureNamespace(ctx, r.ServiceNamespace); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: r.ServiceName, Namespace: r.ServiceNamespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports: []corev1.ServicePort{{
				Name: "https", Port: int32(r.Port), TargetPort: intstr.FromInt32(int32(r.Port)),
			}},
		},
	}
	services := c.Client.CoreV1().Services(r.ServiceNamespace)
	if old, err := services.Get(ctx, r.ServiceName, metav1.GetOptions{}); err == nil {
		svc.ResourceVersion = old.ResourceVersion
		if _, err := services.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update service: %w", err)
		}
	} else if _, err := services.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service: %w", err)
	}

	port := int32(r.Port)
	api := &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: r.APIServiceName()},
		Spec: apiregv1.APIServiceSpec{
			Group:   r.Group,
			Version: r.Version,
			Service: &apiregv1.ServiceReference{
				Namespace: r.ServiceNamespace, Name: r.ServiceName, Port: &port,
			},
			CABundle:              r.CABundle,
			InsecureSkipTLSVerify: r.InsecureSkipTLSVerify,
			GroupPriorityMinimum:  100,
			VersionPriority:       100,
		},
	}
	apis := c.Aggregator.ApiregistrationV1().APIServices()
	if old, err := apis.Get(ctx, api.Name, metav1.GetOptions{}); err == nil {
		api.ResourceVersion = old.ResourceVersion
		_, err = apis.Update(ctx, api, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update apiservice: %w", err)
		}
		return nil
	}
	if _, err := apis.Create(ctx, api, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create apiservice: %w", err)
	}
	return nil
}

// WaitAPIServiceAvailable waits until the APIService has Available=True and
// returns its last Available condition (also on timeout, for the message).
func (c *Cluster) WaitAPIServiceAvailable(ctx context.Context, name string, timeout time.Duration) (apiregv1.APIServiceCondition, error) {
	var last apiregv1.APIServiceCondition
	err := WaitFor(func() (bool, error) {
		api, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, Retry(err)
		}
		for _, cond := range api.Status.Conditions {
			if cond.Type == apiregv1.Available {
				last = cond
				return cond.Status == apiregv1.ConditionTrue, nil
			}
		}
		return false, nil
	}, timeout)
	if err != nil {
		return last, fmt.Errorf("apiservice %s not Available (last: %s %s: %s): %w", name, last.Status, last.Reason, last.Message, err)
	}
	return last, nil
}
