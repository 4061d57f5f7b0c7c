package e2e

// High availability (issue 5): two xmetrics replicas behind the one Service, a Lease
// (coordination.k8s.io/v1 xmetrics/xmetrics-leader) electing the one that polls, the
// other mirroring its values. See docs/high-availability.md.
//
//	tests/e2e/run.sh -run TestHighAvailability -v
//
// The replicas are two processes on loopback with the same --cert-dir (the shared CA
// and client certificate are how they authenticate each other, as with one Secret
// mounted by every pod), each with its own HTTPS and DogStatsD port, both with a token
// of the xmetrics service account (so the Lease permissions come from 10-rbac.yaml).
// The Service the aggregator resolves points at a TCP load balancer in this test that
// plays kube-proxy: each new connection goes, round-robin, to a replica whose /readyz
// answered 200 at its last check (every 200 ms).

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

const (
	haLeaseName     = "xmetrics-leader" // --leader-lease-name's default
	haLeaseDuration = 4 * time.Second
	haRenewDeadline = 3 * time.Second
	haRetryPeriod   = time.Second
	haRefresh       = time.Second
	// haPodIP stands for the replicas' pod IPs: a loopback address other than 127.0.0.1,
	// which the serving certificate names.
	haPodIP = "127.0.0.2"
)

// haArgs are the flags of every replica.
var haArgs = []string{
	"--leader-election=true",
	"--namespace=" + XmetricsNamespace,
	"--leader-lease-duration=" + haLeaseDuration.String(),
	"--leader-renew-deadline=" + haRenewDeadline.String(),
	"--leader-retry-period=" + haRetryPeriod.String(),
	"--refresh-period=" + haRefresh.String(),
	"--rollup=10",
}

// haReplica is one xmetrics process of the two.
type haReplica struct {
	name string // "a", "b": for messages
	*xmEnv
}

func (r *haReplica) String() string { return "replica " + r.name }

// identity is this replica's identity on the Lease, from its status ("" when it does not answer).
func (r *haReplica) identity() string {
	st, err := r.status()
	if err != nil {
		return ""
	}
	return st.Leader.Identity
}

func TestHighAvailabilityLeaderElectionAndTakeover(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	c := startManifestsCluster(t, ctx)
	leases := newLeaseRecorder(t, ctx, c)

	// --- two replicas, one cert dir. Each advertises its "pod IP" (POD_IP, as the
	// Deployment's downward API sets it) on the Lease while leading: 127.0.0.2, an address
	// the shared serving certificate does not name (it names the Service), reached
	// through a forwarder to the replica's loopback port.
	podEnv := []string{"POD_IP=" + haPodIP}
	a := &haReplica{"a", launchXmetricsEnv(t, ctx, c, XmetricsNamespace, "xmetrics", XmetricsOptions{Args: haArgs, Env: podEnv})}
	startPodNetwork(t, haPodIP, a.x)
	b := &haReplica{"b", launchXmetricsEnv(t, ctx, c, XmetricsNamespace, "xmetrics", XmetricsOptions{Args: haArgs, Env: podEnv, ShareCertsWith: a.x})}
	startPodNetwork(t, haPodIP, b.x)
	replicas := []*haReplica{a, b}
	t.Logf("replica a: %s (DogStatsD %s); replica b: %s (DogStatsD %s); cert dir %s", a.x.URL, a.x.DogStatsDAddr, b.x.URL, b.x.DogStatsDAddr, a.x.CertDir)

	// --- the Service: a load balancer over the ready replicas
	lb := startBalancer(t, a.x.CABundle, a.x, b.x)
	mustWait(t, "the load balancer sees both replicas ready", 30*time.Second, func() (bool, error) {
		return lb.backends[0].ready.Load() && lb.backends[1].ready.Load(), nil
	})
	a.ServicePort = lb.Port
	a.register() // 30-service.yaml / 40-apiservice.yaml, port = the balancer's
	t.Logf("APIService → Service xmetrics/xmetrics → localhost:%d → {a %d, b %d}", lb.Port, a.x.Port, b.x.Port)

	// --- who leads: the Lease, and each replica's own view
	leader, follower := haRoles(t, ctx, c, replicas)
	t.Logf("Lease %s/%s held by %q = %s; %s follows", XmetricsNamespace, haLeaseName, leader.identity(), leader, follower)

	// --- an HPA on a DogStatsD gauge sent as through a UDP Service: each datagram to one
	// replica in turn, which relays it to the other. cl: the helpers that only talk to the
	// cluster (any replica's env does).
	cl := a.xmEnv
	const ns, app, metric = "ha", "worker", "ha_queue_depth"
	const minR, maxR = int32(1), int32(8)
	selector := map[string]string{"queue": "ha"}
	cl.startDeployment(ns, app, 1)
	gaugeStart := time.Now()
	g := startGaugeOver(t, []*Xmetrics{a.x, b.x}, true, metric, "queue:ha", 5, time.Second)
	cl.createHPA(ns, externalHPA(app, app, metric, selector, autoscalingv2.AverageValueMetricType, "10", minR, maxR))
	rec := cl.recordHPA(ns, app)
	for _, r := range replicas {
		r.waitReference(metric, "hpa:"+ns+"/"+app, 30*time.Second)
	}
	cl.waitHPA(ns, app, "ScalingActive=True, average 5, desired 1", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 5000 && h.Status.DesiredReplicas == 1
	})
	steadyState(t, gaugeStart)

	// --- only the leader polls; the follower mirrors it
	checkRoles(t, leader, follower)

	// A value only the leader ever receives, for a metric no HPA names: the follower is
	// asked for it directly, forwards the demand, and answers with the leader's value.
	const probe, probeSel = "ha_probe", "probe=leader-only"
	startGaugeTo(t, []*Xmetrics{leader.x}, probe, "probe:leader-only", 77, time.Second)
	shared, err := follower.x.HTTPClient(true) // the replicas' shared client certificate
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shared.CloseIdleConnections)
	asked := time.Now()
	var probeAnswer string
	mustWait(t, "the follower answers "+probe+" (sent only to the leader) with 77", 30*time.Second, func() (bool, error) {
		l, err := directMetric(ctx, shared, follower.x.URL, ns, probe, probeSel)
		if err != nil {
			probeAnswer = err.Error()
			return false, Retry(err)
		}
		probeAnswer = fmt.Sprintf("%+v", l.Items)
		return len(l.Items) == 1 && l.Items[0].Value == "77", nil
	})
	t.Logf("follower %s answered %s{%s} = 77, a value only the leader's DogStatsD received, %s after it was first asked (demand forwarded to the leader): %s",
		follower, probe, probeSel, time.Since(asked).Round(time.Millisecond), probeAnswer)

	// The HPA's metric: the follower, asked directly, answers what the leader answers.
	compareDirect(t, ctx, shared, leader, follower, ns, metric, "queue=ha")

	// A value only the follower receives reaches the leader's store by the relay: the leader,
	// asked directly, answers it from its own store.
	const back, backSel = "ha_probe_back", "probe=follower-only"
	startGaugeTo(t, []*Xmetrics{follower.x}, back, "probe:follower-only", 66, time.Second)
	mustWait(t, "the leader answers "+back+" (sent only to the follower) with 66", 30*time.Second, func() (bool, error) {
		l, err := directMetric(ctx, shared, leader.x.URL, ns, back, backSel)
		if err != nil {
			return false, Retry(err)
		}
		return len(l.Items) == 1 && l.Items[0].Value == "66", nil
	})
	if st, err := leader.status(); err == nil {
		t.Logf("leader's DogStatsD: relayed %d sent, %d failed, %d received from the other replica; targets %v",
			st.Dogstatsd.Relayed, st.Dogstatsd.RelayFailed, st.Dogstatsd.FromReplicas, st.Dogstatsd.RelayTargets)
		if st.Dogstatsd.FromReplicas == 0 || st.Dogstatsd.Relayed == 0 {
			t.Errorf("the leader's DogStatsD relay did not run both ways: %+v", st.Dogstatsd)
		}
	}

	// --- scale up through whichever replica the Service picks
	t0 := g.Set(30)
	s := cl.waitDesiredChange(rec, t0, 1, 60*time.Second)
	t.Logf("value 5 → 30: HPA desiredReplicas 1 → %d after %s", s.desired, s.at.Sub(t0).Round(10*time.Millisecond))
	recordLatency("HA 2 replicas 1→3", s.at.Sub(t0))
	if want := expectedAverageValueReplicas(30000, 10000, 1, minR, maxR); s.desired != want {
		t.Errorf("desiredReplicas after 5 → 30 = %d, want %d; history:\n  %s", s.desired, want, rec.history(t0))
	}
	cl.waitDeployment(ns, app, "3 replicas ready", 60*time.Second, func(spec, ready int32) bool { return spec == 3 && ready == 3 })
	compareDirect(t, ctx, shared, leader, follower, ns, metric, "queue=ha")

	// --- API writes: Lease updates over 20 s, from the Lease's watch and kube-apiserver's metrics
	measureLeaseWrites(t, ctx, c, leases, 20*time.Second)

	conns := lb.connections()
	t.Logf("connections through the Service so far: %v", conns)
	if conns["a"] == 0 || conns["b"] == 0 {
		t.Errorf("the Service did not use both replicas: %v", conns)
	}

	// --- SIGKILL the leader
	killed := leader
	survivor := follower
	tk := takeover(t, ctx, leases, killed, survivor, "SIGKILL", func() { killed.x.Kill() })
	if tk.holderChange > haLeaseDuration+2*haRetryPeriod+500*time.Millisecond {
		t.Errorf("SIGKILL: the Lease changed hands %s after the kill; want within the lease duration %s (+ up to two retry periods of observation)", tk.holderChange.Round(time.Millisecond), haLeaseDuration)
	}
	recordTiming("HA takeover after SIGKILL of the leader: Lease holder changed %s, new leader's first refresh %s after the kill (lease duration %s, retry period %s)",
		tk.holderChange.Round(10*time.Millisecond), tk.firstRefresh.Round(10*time.Millisecond), haLeaseDuration, haRetryPeriod)
	// The HPA keeps scaling, on a value sent after the kill, through the survivor.
	t2 := g.Set(50)
	s = cl.waitDesiredChange(rec, t2, 3, 60*time.Second)
	t.Logf("after the kill, value 30 → 50: HPA desiredReplicas 3 → %d after %s", s.desired, s.at.Sub(t2).Round(10*time.Millisecond))
	recordLatency("HA after SIGKILL 3→5", s.at.Sub(t2))
	if want := expectedAverageValueReplicas(50000, 10000, 3, minR, maxR); s.desired != want {
		t.Errorf("desiredReplicas after 30 → 50 = %d, want %d; history:\n  %s", s.desired, want, rec.history(t2))
	}
	cl.waitDeployment(ns, app, "5 replicas ready", 60*time.Second, func(spec, ready int32) bool { return spec == 5 && ready == 5 })
	// The survivor now polls its own store, which received the probe (sent only to the old
	// leader) by the relay: its value computes from all the traffic, not from its share.
	mustWait(t, "the survivor's own store answers "+probe+" with 77", 30*time.Second, func() (bool, error) {
		st, err := survivor.status()
		if err != nil {
			return false, Retry(err)
		}
		for _, m := range st.Metrics {
			if m.MetricName == probe {
				if m.Valid && m.Value == "77" {
					return true, nil
				}
				return false, Retry(fmt.Errorf("%s: valid=%v value=%q error=%q", probe, m.Valid, m.Value, m.Error))
			}
		}
		return false, Retry(fmt.Errorf("%s is not in the survivor's status", probe))
	})

	// --- graceful: the killed replica comes back (a new candidate), then the leader gets SIGTERM
	if err := killed.x.Restart(); err != nil {
		t.Fatal(err)
	}
	killed.waitReady(60 * time.Second)
	mustWait(t, "the restarted replica follows", 30*time.Second, func() (bool, error) {
		st, err := killed.status()
		if err != nil {
			return false, Retry(err)
		}
		return st.Poller.Following && !st.Leader.IsLeader && st.Leader.Holder == survivor.identity(), nil
	})
	mustWait(t, "the load balancer sees the restarted replica ready", 30*time.Second, func() (bool, error) {
		return lb.backend(killed.x).ready.Load(), nil
	})
	checkRoles(t, survivor, killed)
	tg := takeover(t, ctx, leases, survivor, killed, "SIGTERM", func() { survivor.x.Stop() })
	if tg.holderChange > 2*haRetryPeriod+500*time.Millisecond {
		t.Errorf("SIGTERM: the Lease changed hands %s after the signal; a released Lease should be taken within about one retry period (%s)", tg.holderChange.Round(time.Millisecond), haRetryPeriod)
	}
	recordTiming("HA takeover after SIGTERM of the leader (Lease released): Lease holder changed %s, new leader's first refresh %s after the signal (retry period %s)",
		tg.holderChange.Round(10*time.Millisecond), tg.firstRefresh.Round(10*time.Millisecond), haRetryPeriod)
	t3 := g.Set(20)
	s = cl.waitDesiredChange(rec, t3, 5, 60*time.Second)
	t.Logf("after the SIGTERM, value 50 → 20: HPA desiredReplicas 5 → %d after %s", s.desired, s.at.Sub(t3).Round(10*time.Millisecond))
	recordLatency("HA after SIGTERM 5→2", s.at.Sub(t3))
	if want := expectedAverageValueReplicas(20000, 10000, 5, minR, maxR); s.desired != want {
		t.Errorf("desiredReplicas after 50 → 20 = %d, want %d; history:\n  %s", s.desired, want, rec.history(t3))
	}
	cl.waitDeployment(ns, app, "2 replicas ready", 60*time.Second, func(spec, ready int32) bool { return spec == 2 && ready == 2 })

	// --- the whole run: the HPA never lost its metric
	rec.mu.Lock()
	var bad []string
	for _, s := range rec.samples {
		if s.active != "" && s.active != "True" {
			bad = append(bad, fmt.Sprintf("+%s %s", s.at.Sub(start).Round(10*time.Millisecond), s.active))
		}
	}
	rec.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("the HPA reported ScalingActive other than True: %s", strings.Join(bad, "; "))
	}
	events, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=" + app})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int32{}
	for _, ev := range events.Items {
		reasons[ev.Reason] += max(ev.Count, 1)
		if ev.Type == corev1.EventTypeWarning {
			t.Errorf("HPA event %s %s: %s", ev.Type, ev.Reason, ev.Message)
		}
	}
	t.Logf("HPA events: %v; HPA history:\n  %s", reasons, rec.history(time.Time{}))
	conns = lb.connections()
	t.Logf("connections through the Service: %v; refused for want of a ready replica: %d; redialled after a failed dial: %d",
		conns, lb.refused.Load(), lb.redials.Load())
	recordTiming("HA scenario %s", time.Since(start).Round(100*time.Millisecond))
}

// haRoles reads the Lease and each replica's status and returns (leader, follower);
// both replicas must agree with the Lease.
func haRoles(t *testing.T, ctx context.Context, c *Cluster, replicas []*haReplica) (leader, follower *haReplica) {
	t.Helper()
	var last string
	mustWait(t, "one replica leads (Lease holder = its identity, isLeader), the other follows", 30*time.Second, func() (bool, error) {
		lease, err := c.Client.CoordinationV1().Leases(XmetricsNamespace).Get(ctx, haLeaseName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, Retry(err)
		}
		holder := ""
		if lease.Spec.HolderIdentity != nil {
			holder = *lease.Spec.HolderIdentity
		}
		leader, follower = nil, nil
		var views []string
		for _, r := range replicas {
			st, err := r.status()
			if err != nil {
				last = err.Error()
				return false, Retry(err)
			}
			views = append(views, fmt.Sprintf("%s: identity=%s isLeader=%v holder=%s following=%v", r, st.Leader.Identity, st.Leader.IsLeader, st.Leader.Holder, st.Poller.Following))
			if !st.Leader.Enabled || st.Leader.Holder != holder {
				continue
			}
			if st.Leader.Identity == holder && st.Leader.IsLeader && !st.Poller.Following {
				leader = r
			} else if st.Leader.Identity != holder && !st.Leader.IsLeader && st.Poller.Following {
				follower = r
			}
		}
		last = fmt.Sprintf("Lease holder %q; %s", holder, strings.Join(views, "; "))
		return leader != nil && follower != nil, nil
	})
	t.Logf("roles: %s", last)
	return leader, follower
}

// checkRoles watches both replicas' status for 3 s: the leader's refresh cycles grow,
// the follower's do not while its exchanges with the leader do.
func checkRoles(t *testing.T, leader, follower *haReplica) {
	t.Helper()
	l0, err := leader.status()
	if err != nil {
		t.Fatal(err)
	}
	f0, err := follower.status()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	l1, err := leader.status()
	if err != nil {
		t.Fatal(err)
	}
	f1, err := follower.status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("over 3 s: leader %s cycles %d → %d, backend calls %d → %d; follower %s cycles %d → %d, backend calls %d → %d, following=%v, exchanges with the leader %d → %d (last error %q)",
		leader, l0.Poller.Cycles, l1.Poller.Cycles, l0.Poller.BackendCalls, l1.Poller.BackendCalls,
		follower, f0.Poller.Cycles, f1.Poller.Cycles, f0.Poller.BackendCalls, f1.Poller.BackendCalls, f1.Poller.Following,
		f0.Poller.FollowExchanges, f1.Poller.FollowExchanges, f1.Poller.FollowError)
	if l1.Poller.Following || l1.Poller.Cycles < l0.Poller.Cycles+2 {
		t.Errorf("leader %s: following=%v, cycles %d → %d in 3 s (refresh period %s)", leader, l1.Poller.Following, l0.Poller.Cycles, l1.Poller.Cycles, haRefresh)
	}
	if !f1.Poller.Following || f1.Poller.Cycles != f0.Poller.Cycles || f1.Poller.BackendCalls != f0.Poller.BackendCalls {
		t.Errorf("follower %s: following=%v, cycles %d → %d, backend calls %d → %d: it must not poll", follower, f1.Poller.Following, f0.Poller.Cycles, f1.Poller.Cycles, f0.Poller.BackendCalls, f1.Poller.BackendCalls)
	}
	if f1.Poller.FollowExchanges < f0.Poller.FollowExchanges+2 || f1.Poller.FollowError != "" {
		t.Errorf("follower %s: exchanges with the leader %d → %d in 3 s, last error %q", follower, f0.Poller.FollowExchanges, f1.Poller.FollowExchanges, f1.Poller.FollowError)
	}
	wantPeer := "https://" + net.JoinHostPort(haPodIP, itoa(leader.x.Port))
	if l1.Leader.Holder != l1.Leader.Identity || f1.Leader.Holder != l1.Leader.Identity || f1.Leader.PeerURL != wantPeer {
		t.Errorf("leader %s identity %q; holder as seen by the leader %q, by the follower %q (peer URL %q, want %q)",
			leader, l1.Leader.Identity, l1.Leader.Holder, f1.Leader.Holder, f1.Leader.PeerURL, wantPeer)
	}
}

// directMetric GETs an external metric from one replica's own port (not through kube-apiserver).
func directMetric(ctx context.Context, hc *http.Client, base, ns, metric, selector string) (*externalMetricList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+externalMetricPath(ns, metric, selector), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s %s", base, resp.Status, body)
	}
	var l externalMetricList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("%v: %s", err, body)
	}
	return &l, nil
}

// compareDirect asks both replicas directly for the metric: the follower must answer
// the leader's value and timestamp (allowing for one refresh in between).
func compareDirect(t *testing.T, ctx context.Context, hc *http.Client, leader, follower *haReplica, ns, metric, selector string) {
	t.Helper()
	var last string
	mustWait(t, "the follower answers "+metric+" as the leader does", 10*time.Second, func() (bool, error) {
		l, err := directMetric(ctx, hc, leader.x.URL, ns, metric, selector)
		if err != nil {
			return false, Retry(err)
		}
		f, err := directMetric(ctx, hc, follower.x.URL, ns, metric, selector)
		if err != nil {
			return false, Retry(err)
		}
		last = fmt.Sprintf("leader %+v, follower %+v", l.Items, f.Items)
		return len(l.Items) == 1 && len(f.Items) == 1 && l.Items[0].Value == f.Items[0].Value && l.Items[0].Timestamp == f.Items[0].Timestamp, nil
	})
	t.Logf("%s{%s} asked directly: %s", metric, selector, last)
}

// ---------------------------------------------------------------------------
// Takeover

type takeoverTimes struct {
	holderChange time.Duration // signal → the Lease names another holder
	firstRefresh time.Duration // signal → the new leader's status shows a refresh cycle of its own
}

// takeover runs stop (SIGKILL or SIGTERM of the leader old) and measures, from that
// moment, when the Lease names survivor and when survivor completes its first refresh.
func takeover(t *testing.T, ctx context.Context, leases *leaseRecorder, old, survivor *haReplica, how string, stop func()) takeoverTimes {
	t.Helper()
	oldID, newID := old.identity(), survivor.identity()
	if oldID == "" || newID == "" {
		t.Fatalf("%s: identities %q (old leader), %q (survivor)", how, oldID, newID)
	}
	st, err := survivor.status()
	if err != nil {
		t.Fatal(err)
	}
	cycles0 := st.Poller.Cycles

	// The survivor's status every 50 ms, from before the signal.
	refreshed := make(chan time.Time, 1)
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	go func() {
		for pollCtx.Err() == nil {
			if st, err := survivor.status(); err == nil && !st.Poller.Following && st.Poller.Cycles > cycles0 {
				refreshed <- time.Now()
				return
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	stopped := make(chan time.Duration, 1)
	go func() { stop(); stopped <- time.Since(t0) }()

	var released time.Duration
	ev, ok := leases.waitFor(t0, 30*time.Second, func(e leaseEvent) bool {
		if e.holder == "" && released == 0 {
			released = e.at.Sub(t0)
		}
		return e.holder == newID
	})
	if !ok {
		t.Fatalf("%s of the leader %s: the Lease never named %s (%s) within 30 s; events since:\n  %s", how, old, survivor, newID, leases.history(t0))
	}
	res := takeoverTimes{holderChange: ev.at.Sub(t0)}
	select {
	case at := <-refreshed:
		res.firstRefresh = at.Sub(t0)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: %s leads (Lease) but its status shows no refresh of its own 30 s later", how, survivor)
	}
	stopTook := <-stopped
	rel := "not released"
	if released > 0 {
		rel = fmt.Sprintf("released (empty holder) %s after", released.Round(time.Millisecond))
	}
	t.Logf("%s of the leader %s (%s): process gone %s after; Lease %s; holder %s (%s) %s after (transitions %d); %s's first refresh %s after",
		how, old, oldID, stopTook.Round(time.Millisecond), rel, survivor, newID, res.holderChange.Round(time.Millisecond), ev.transitions,
		survivor, res.firstRefresh.Round(time.Millisecond))
	t.Logf("Lease events around the %s:\n  %s", how, leases.history(t0.Add(-2*time.Second)))
	return res
}

// ---------------------------------------------------------------------------
// The Lease, watched: every write is one event

type leaseEvent struct {
	at              time.Time
	typ             watch.EventType
	holder          string
	renewTime       time.Time
	resourceVersion string
	transitions     int32
}

type leaseRecorder struct {
	mu     sync.Mutex
	events []leaseEvent
}

// newLeaseRecorder watches the Lease xmetrics/xmetrics-leader (before it exists) until
// the test ends, recording every event with the time it arrived.
func newLeaseRecorder(t *testing.T, ctx context.Context, c *Cluster) *leaseRecorder {
	r := &leaseRecorder{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		leases := c.Client.CoordinationV1().Leases(XmetricsNamespace)
		sel := "metadata.name=" + haLeaseName
		for ctx.Err() == nil {
			list, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			w, err := leases.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				l, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					continue
				}
				e := leaseEvent{at: time.Now(), typ: ev.Type, resourceVersion: l.ResourceVersion}
				if l.Spec.HolderIdentity != nil {
					e.holder = *l.Spec.HolderIdentity
				}
				if l.Spec.RenewTime != nil {
					e.renewTime = l.Spec.RenewTime.Time
				}
				if l.Spec.LeaseTransitions != nil {
					e.transitions = *l.Spec.LeaseTransitions
				}
				r.mu.Lock()
				r.events = append(r.events, e)
				r.mu.Unlock()
			}
			w.Stop()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// waitFor returns the first event at or after since that matches (seeing every event
// in order), waiting up to timeout.
func (r *leaseRecorder) waitFor(since time.Time, timeout time.Duration, match func(leaseEvent) bool) (leaseEvent, bool) {
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		r.mu.Lock()
		events := append([]leaseEvent(nil), r.events...)
		r.mu.Unlock()
		for ; seen < len(events); seen++ {
			if e := events[seen]; !e.at.Before(since) && match(e) {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return leaseEvent{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writes counts the events (each a successful write of the Lease) in [from, to).
func (r *leaseRecorder) writes(from, to time.Time) (n int, holders map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	holders = map[string]int{}
	for _, e := range r.events {
		if !e.at.Before(from) && e.at.Before(to) && e.typ != watch.Bookmark {
			n++
			holders[e.holder]++
		}
	}
	return n, holders
}

func (r *leaseRecorder) history(since time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, e := range r.events {
		if e.at.Before(since) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s holder=%q renewTime=%s transitions=%d rv=%s",
			e.at.Format("15:04:05.000"), e.typ, e.holder, e.renewTime.Format("15:04:05.000000"), e.transitions, e.resourceVersion))
	}
	return strings.Join(parts, "\n  ")
}

// measureLeaseWrites counts, over d, the Lease's events and kube-apiserver's
// apiserver_request_total for leases (every Lease in the cluster: kube-apiserver
// renews its own identity Lease in kube-system too).
func measureLeaseWrites(t *testing.T, ctx context.Context, c *Cluster, leases *leaseRecorder, d time.Duration) {
	t.Helper()
	before, err := apiserverRequests(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	time.Sleep(d)
	to := time.Now()
	after, err := apiserverRequests(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	n, holders := leases.writes(from, to)
	window := to.Sub(from)
	perMinute := float64(n) * float64(time.Minute) / float64(window)
	delta := func(verb, resource string) float64 { return after[verb+" "+resource] - before[verb+" "+resource] }
	var writes []string
	for k, v := range after {
		verb := strings.SplitN(k, " ", 2)[0]
		if verb == "GET" || verb == "LIST" || verb == "WATCH" {
			continue
		}
		if dv := v - before[k]; dv > 0 {
			writes = append(writes, fmt.Sprintf("%s %.0f", k, dv))
		}
	}
	t.Logf("over %s: %d writes of Lease %s/%s (watch events; by holder %v) = %.1f per minute; kube-apiserver apiserver_request_total: PUT leases +%.0f, GET leases +%.0f (all Leases, incl. kube-apiserver's own); every write in the window: %s",
		window.Round(10*time.Millisecond), n, XmetricsNamespace, haLeaseName, holders, perMinute, delta("PUT", "leases"), delta("GET", "leases"), strings.Join(writes, ", "))
	recordTiming("HA API writes: %d Lease updates in %s = %.1f PUT/min (retry period %s, 2 replicas; kube-apiserver counted PUT leases +%.0f, GET leases +%.0f incl. its own identity Lease)",
		n, window.Round(100*time.Millisecond), perMinute, haRetryPeriod, delta("PUT", "leases"), delta("GET", "leases"))
	expected := float64(window) / float64(haRetryPeriod)
	if float64(n) > expected+1.5 || float64(n) < expected*0.7 {
		t.Errorf("%d Lease writes in %s; want about one per retry period (%.0f)", n, window.Round(10*time.Millisecond), expected)
	}
	if len(holders) != 1 {
		t.Errorf("the Lease was written with holders %v in a steady state: want the leader alone", holders)
	}
	if got := delta("PUT", "leases"); float64(n) > got {
		t.Errorf("kube-apiserver counted %.0f PUTs on leases, fewer than the %d Lease events", got, n)
	}
}

// apiserverRequests scrapes kube-apiserver's /metrics: apiserver_request_total summed
// by "VERB resource".
func apiserverRequests(ctx context.Context, c *Cluster) (map[string]float64, error) {
	raw, err := c.Client.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver /metrics: %w", err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels := line[len("apiserver_request_total{"):end]
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		verb, resource := promLabel(labels, "verb"), promLabel(labels, "resource")
		out[verb+" "+resource] += v
	}
	return out, sc.Err()
}

var promLabelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// promLabel is the value of the label name in a Prometheus sample's label set.
func promLabel(labels, name string) string {
	for _, m := range promLabelRE.FindAllStringSubmatch(labels, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// The Service: a TCP load balancer over the ready replicas, as kube-proxy does with
// a Service's ready endpoints.

type lbBackend struct {
	name  string
	x     *Xmetrics
	addr  string
	ready atomic.Bool
	conns atomic.Int64
}

type tcpBalancer struct {
	Port     int
	gated    bool // forward only to backends whose /readyz answered 200 at the last check
	backends []*lbBackend
	next     atomic.Uint64
	refused  atomic.Int64 // connections closed: no replica was ready
	redials  atomic.Int64 // a ready replica refused the connection; the next one took it

	t        *testing.T
	ln       net.Listener
	hc       *http.Client
	mu       sync.Mutex
	open     map[net.Conn]struct{}
	readyLog []string
	wg       sync.WaitGroup
}

// startBalancer listens on a free loopback port and forwards each new connection to the
// next replica (round-robin) whose GET /readyz answered 200 at the last check (every
// 200 ms). A connection a ready replica refuses (killed since the last check) goes to
// the next ready one; with none ready the connection is closed.
func startBalancer(t *testing.T, caBundle []byte, xs ...*Xmetrics) *tcpBalancer {
	t.Helper()
	return newBalancer(t, "127.0.0.1:0", caBundle, xs)
}

// startPodNetwork makes x reachable at ip:<its port> too, as at its pod IP: every
// connection to that address goes to x (whether ready or not).
func startPodNetwork(t *testing.T, ip string, x *Xmetrics) *tcpBalancer {
	t.Helper()
	return newBalancer(t, net.JoinHostPort(ip, itoa(x.Port)), nil, []*Xmetrics{x})
}

// newBalancer listens on listen and forwards connections to xs: round-robin over the
// ready ones when caBundle is given (to check /readyz), else to the first, always.
func newBalancer(t *testing.T, listen string, caBundle []byte, xs []*Xmetrics) *tcpBalancer {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	lb := &tcpBalancer{
		Port:  ln.Addr().(*net.TCPAddr).Port,
		gated: caBundle != nil,
		t:     t,
		ln:    ln,
		open:  map[net.Conn]struct{}{},
	}
	for i, x := range xs {
		lb.backends = append(lb.backends, &lbBackend{name: string(rune('a' + i)), x: x, addr: "127.0.0.1:" + itoa(x.Port)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	if lb.gated {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caBundle)
		lb.hc = &http.Client{Timeout: time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
			DisableKeepAlives: true,
		}}
		lb.wg.Add(1)
		go func() { defer lb.wg.Done(); lb.checkLoop(ctx) }()
	}
	lb.wg.Add(1)
	go func() { defer lb.wg.Done(); lb.acceptLoop() }()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		lb.mu.Lock()
		for c := range lb.open {
			c.Close()
		}
		lb.mu.Unlock()
		lb.wg.Wait()
		if t.Failed() {
			lb.mu.Lock()
			t.Logf("load balancer readiness changes:\n  %s", strings.Join(lb.readyLog, "\n  "))
			lb.mu.Unlock()
		}
	})
	return lb
}

func (lb *tcpBalancer) backend(x *Xmetrics) *lbBackend {
	for _, b := range lb.backends {
		if b.x == x {
			return b
		}
	}
	lb.t.Fatalf("no backend for %s", x.URL)
	return nil
}

func (lb *tcpBalancer) connections() map[string]int64 {
	out := map[string]int64{}
	for _, b := range lb.backends {
		out[b.name] = b.conns.Load()
	}
	return out
}

func (lb *tcpBalancer) checkLoop(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var wg sync.WaitGroup
		for _, b := range lb.backends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready := false
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+b.addr+"/readyz", nil)
				if resp, err := lb.hc.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ready = resp.StatusCode == http.StatusOK
				}
				if b.ready.Swap(ready) != ready && ctx.Err() == nil {
					lb.mu.Lock()
					lb.readyLog = append(lb.readyLog, fmt.Sprintf("%s %s ready=%v", time.Now().Format("15:04:05.000"), b.name, ready))
					lb.mu.Unlock()
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (lb *tcpBalancer) acceptLoop() {
	for {
		conn, err := lb.ln.Accept()
		if err != nil {
			return // closed
		}
		lb.wg.Add(1)
		go func() { defer lb.wg.Done(); lb.forward(conn) }()
	}
}

func (lb *tcpBalancer) forward(client net.Conn) {
	n := uint64(len(lb.backends))
	start := lb.next.Add(1)
	var backend net.Conn
	for i := uint64(0); i < n && backend == nil; i++ {
		b := lb.backends[(start+i)%n]
		if lb.gated && !b.ready.Load() {
			continue
		}
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err != nil {
			lb.redials.Add(1)
			continue
		}
		b.conns.Add(1)
		backend = c
	}
	if backend == nil {
		lb.refused.Add(1)
		client.Close()
		return
	}
	lb.mu.Lock()
	lb.open[client], lb.open[backend] = struct{}{}, struct{}{}
	lb.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done // either side ended: end both, as a proxy whose peer went away
	client.Close()
	backend.Close()
	<-done
	lb.mu.Lock()
	delete(lb.open, client)
	delete(lb.open, backend)
	lb.mu.Unlock()
}
