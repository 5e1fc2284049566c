// A Mesos framework written with the Go library Debian ships (mesos-go, v1 HTTP API, JSON codec), used by
// the tests to drive the project's test master with a client the project did not write.
//
// It prints one JSON object per line on stdout (what it saw), and exits 0 when its scenario completed.
//
//	basic:    subscribe, launch tasks that finish, fail and run long on the first offer, acknowledge every
//	          update, reconcile explicitly and implicitly, kill the long task, tear down.
//	failover: subscribe, then subscribe again with the same framework id on a second connection; the first
//	          stream must end with ERROR "Framework failed over", the second must get offers.
//	volume:   as role "wps" and principal "go-test": RESERVE disk, cpus and mem, CREATE a persistent volume and
//	          launch a task that writes into it, in one ACCEPT; on a later offer that carries the volume, launch a
//	          task that reads what the first wrote; then DESTROY the volume and UNRESERVE, and wait for an offer
//	          with nothing reserved.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

var (
	master   = flag.String("master", "http://127.0.0.1:5050", "a master's base URL (a standby redirects)")
	user     = flag.String("user", "", "FrameworkInfo.user")
	scenario = flag.String("scenario", "basic", "basic | failover | volume")
	deadline = flag.Duration("timeout", 60*time.Second, "give up after this long")
)

func say(fields map[string]interface{}) {
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

func fail(format string, args ...interface{}) {
	say(map[string]interface{}{"error": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

func newCaller() calls.Caller {
	client := httpcli.New(
		httpcli.Endpoint(*master+"/api/v1/scheduler"),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeJSON]),
		httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))),
	)
	return httpsched.NewCaller(client)
}

func frameworkInfo(id string) *mesos.FrameworkInfo {
	timeout := 60.0
	info := &mesos.FrameworkInfo{
		User:            *user,
		Name:            "mesos-go-test",
		FailoverTimeout: &timeout,
		Capabilities: []mesos.FrameworkInfo_Capability{
			{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE},
			{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		},
	}
	if id != "" {
		info.ID = &mesos.FrameworkID{Value: id}
	}
	return info
}

func scalar(name string, value float64, role *string) mesos.Resource {
	kind := mesos.SCALAR
	return mesos.Resource{Name: name, Type: &kind, Scalar: &mesos.Value_Scalar{Value: value}, Role: role}
}

func shellTask(name, command string, offer mesos.Offer) mesos.TaskInfo {
	role := "*"
	for _, r := range offer.Resources {
		if r.Name == "cpus" && r.Role != nil {
			role = *r.Role
		}
	}
	return mesos.TaskInfo{
		Name:      name,
		TaskID:    mesos.TaskID{Value: name},
		AgentID:   offer.AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1, &role), scalar("mem", 32, &role)},
		Command:   &mesos.CommandInfo{Value: &command},
	}
}

// subscribe opens a subscription stream; events arrive on the returned channel, which closes at its end.
func subscribe(ctx context.Context, caller calls.Caller, id string) <-chan scheduler.Event {
	resp, err := caller.Call(ctx, calls.Subscribe(frameworkInfo(id)))
	if err != nil {
		fail("subscribe: %v", err)
	}
	events := make(chan scheduler.Event)
	go func() {
		defer close(events)
		defer resp.Close()
		for {
			var event scheduler.Event
			if err := resp.Decode(&event); err != nil {
				say(map[string]interface{}{"stream_end": err.Error()})
				return
			}
			events <- event
		}
	}()
	return events
}

func call(ctx context.Context, caller calls.Caller, id string, c *scheduler.Call) {
	if err := calls.CallNoData(ctx, caller, c.With(calls.Framework(id))); err != nil {
		fail("%s: %v", c.GetType(), err)
	}
}

func basic(ctx context.Context) {
	caller := newCaller()
	events := subscribe(ctx, caller, "")
	var id string
	launched := false
	final := map[string]string{}
	agents := map[string]string{}
	want := map[string]string{"ok": "TASK_FINISHED", "fails": "TASK_FAILED", "long": "TASK_KILLED"}
	for {
		var event scheduler.Event
		select {
		case e, open := <-events:
			if !open {
				fail("the stream ended early")
			}
			event = e
		case <-ctx.Done():
			fail("timed out; final states so far: %v", final)
		}
		switch event.GetType() {
		case scheduler.Event_SUBSCRIBED:
			id = event.GetSubscribed().GetFrameworkID().GetValue()
			say(map[string]interface{}{"event": "SUBSCRIBED", "framework_id": id,
				"heartbeat": event.GetSubscribed().GetHeartbeatIntervalSeconds(),
				"master":    event.GetSubscribed().GetMasterInfo().GetAddress().GetPort()})
		case scheduler.Event_HEARTBEAT:
			say(map[string]interface{}{"event": "HEARTBEAT"})
		case scheduler.Event_OFFERS:
			offers := event.GetOffers().GetOffers()
			say(map[string]interface{}{"event": "OFFERS", "count": len(offers)})
			ids := []mesos.OfferID{}
			for _, o := range offers {
				ids = append(ids, o.ID)
			}
			if launched {
				call(ctx, caller, id, calls.Decline(ids...).With(calls.RefuseSeconds(time.Hour)))
				continue
			}
			launched = true
			offer := offers[0]
			tasks := []mesos.TaskInfo{
				shellTask("ok", "true", offer), shellTask("fails", "exit 3", offer), shellTask("long", "sleep 60", offer),
			}
			call(ctx, caller, id, calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(offer.ID)))
			if len(ids) > 1 {
				call(ctx, caller, id, calls.Decline(ids[1:]...).With(calls.RefuseSeconds(time.Hour)))
			}
		case scheduler.Event_UPDATE:
			status := event.GetUpdate().GetStatus()
			task := status.TaskID.Value
			say(map[string]interface{}{"event": "UPDATE", "task": task, "state": status.GetState().String(),
				"source": status.GetSource().String(), "reason": status.GetReason().String(),
				"message": status.GetMessage(), "acked": len(status.GetUUID()) > 0})
			if status.AgentID != nil {
				agents[task] = status.AgentID.GetValue()
			}
			if len(status.GetUUID()) > 0 {
				call(ctx, caller, id, calls.Acknowledge(status.AgentID.GetValue(), task, status.GetUUID()))
			}
			state := status.GetState().String()
			if state == "TASK_RUNNING" && task == "long" && len(status.GetUUID()) > 0 {
				call(ctx, caller, id, calls.Reconcile(calls.ReconcileTasks(agents)))
				call(ctx, caller, id, calls.Reconcile())
				call(ctx, caller, id, calls.Kill("long", agents["long"]))
			}
			if status.GetReason() != mesos.REASON_RECONCILIATION && state != "TASK_RUNNING" &&
				state != "TASK_STARTING" && state != "TASK_KILLING" && state != "TASK_STAGING" {
				final[task] = state
			}
			done := true
			for name, expected := range want {
				done = done && final[name] == expected
			}
			if done {
				call(ctx, caller, id, &scheduler.Call{Type: scheduler.Call_TEARDOWN})
				say(map[string]interface{}{"done": true, "final": final})
				return
			}
		case scheduler.Event_ERROR:
			fail("ERROR event: %s", event.GetError().GetMessage())
		}
	}
}

func failover(ctx context.Context) {
	first := subscribe(ctx, newCaller(), "")
	var id string
	for event := range first {
		if event.GetType() == scheduler.Event_SUBSCRIBED {
			id = event.GetSubscribed().GetFrameworkID().GetValue()
			break
		}
	}
	if id == "" {
		fail("no SUBSCRIBED event")
	}
	say(map[string]interface{}{"event": "SUBSCRIBED", "framework_id": id})
	second := subscribe(ctx, newCaller(), id)
	for event := range first {
		if event.GetType() == scheduler.Event_ERROR {
			say(map[string]interface{}{"event": "ERROR", "stream": "first", "message": event.GetError().GetMessage()})
		}
	}
	say(map[string]interface{}{"event": "END", "stream": "first"})
	for event := range second {
		switch event.GetType() {
		case scheduler.Event_SUBSCRIBED:
			say(map[string]interface{}{"event": "SUBSCRIBED", "stream": "second",
				"framework_id": event.GetSubscribed().GetFrameworkID().GetValue()})
		case scheduler.Event_OFFERS:
			say(map[string]interface{}{"event": "OFFERS", "stream": "second",
				"count": len(event.GetOffers().GetOffers())})
			say(map[string]interface{}{"done": true})
			return
		}
	}
	fail("the second stream ended without offers")
}

const (
	volumeRole      = "wps"
	volumePrincipal = "go-test"
	volumeID        = "go-volume"
)

func reserved(name string, value float64) mesos.Resource {
	role, principal := volumeRole, volumePrincipal
	resource := scalar(name, value, &role)
	resource.Reservation = &mesos.Resource_ReservationInfo{Principal: &principal}
	resource.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	return resource
}

func persistentVolume() mesos.Resource {
	resource := reserved("disk", 32)
	principal, mode := volumePrincipal, mesos.RW
	resource.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: volumeID, Principal: &principal},
		Volume:      &mesos.Volume{ContainerPath: "shared", Mode: &mode},
	}
	return resource
}

func volumeTask(name, command string, offer mesos.Offer) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name: name, TaskID: mesos.TaskID{Value: name}, AgentID: offer.AgentID,
		Resources: []mesos.Resource{reserved("cpus", 0.1), reserved("mem", 32), persistentVolume()},
		Command:   &mesos.CommandInfo{Value: &command},
	}
}

// offerState says what an offer holds of ours: the volume, some other reservation, or nothing reserved.
func offerState(offer mesos.Offer) string {
	state := "unreserved"
	for _, r := range offer.Resources {
		if r.Disk != nil && r.Disk.Persistence != nil && r.Disk.Persistence.ID == volumeID {
			return "volume"
		}
		if r.Reservation != nil {
			state = "reserved"
		}
	}
	return state
}

func volume(ctx context.Context) {
	caller := newCaller()
	info := frameworkInfo("")
	role, principal := volumeRole, volumePrincipal
	info.Roles = []string{role}
	info.Principal = &principal
	info.Capabilities = append(info.Capabilities, mesos.FrameworkInfo_Capability{
		Type: mesos.FrameworkInfo_Capability_MULTI_ROLE})
	resp, err := caller.Call(ctx, calls.Subscribe(info))
	if err != nil {
		fail("subscribe: %v", err)
	}
	defer resp.Close()
	var id string
	phase := "create" // create -> read -> destroy -> done
	for {
		var event scheduler.Event
		if err := resp.Decode(&event); err != nil {
			fail("stream: %v (phase %s)", err, phase)
		}
		if ctx.Err() != nil {
			fail("timed out in phase %s", phase)
		}
		switch event.GetType() {
		case scheduler.Event_SUBSCRIBED:
			id = event.GetSubscribed().GetFrameworkID().GetValue()
			say(map[string]interface{}{"event": "SUBSCRIBED", "framework_id": id})
		case scheduler.Event_OFFERS:
			for _, offer := range event.GetOffers().GetOffers() {
				state := offerState(offer)
				say(map[string]interface{}{"event": "OFFER", "phase": phase, "holds": state})
				accept := func(ops ...mesos.Offer_Operation) {
					call(ctx, caller, id, calls.Accept(calls.OfferOperations(ops).WithOffers(offer.ID)).With(
						calls.RefuseSeconds(0)))
				}
				switch {
				case phase == "create" && state == "unreserved":
					accept(calls.OpReserve(reserved("disk", 32), reserved("cpus", 0.1), reserved("mem", 32)),
						calls.OpCreate(persistentVolume()),
						calls.OpLaunch(volumeTask("writer", "echo from-go > shared/note", offer)))
					phase = "wait-writer"
				case phase == "read" && state == "volume":
					accept(calls.OpLaunch(volumeTask("reader", "test \"$(cat shared/note)\" = from-go", offer)))
					phase = "wait-reader"
				case phase == "destroy" && state == "volume":
					accept(calls.OpDestroy(persistentVolume()),
						calls.OpUnreserve(reserved("disk", 32), reserved("cpus", 0.1), reserved("mem", 32)))
					phase = "released"
				case phase == "released" && state == "unreserved":
					call(ctx, caller, id, &scheduler.Call{Type: scheduler.Call_TEARDOWN})
					say(map[string]interface{}{"done": true})
					return
				default:
					call(ctx, caller, id, calls.Decline(offer.ID).With(calls.RefuseSeconds(0)))
				}
			}
		case scheduler.Event_UPDATE:
			status := event.GetUpdate().GetStatus()
			say(map[string]interface{}{"event": "UPDATE", "task": status.TaskID.Value, "state": status.GetState().String(),
				"message": status.GetMessage()})
			if len(status.GetUUID()) > 0 {
				call(ctx, caller, id, calls.Acknowledge(status.AgentID.GetValue(), status.TaskID.Value, status.GetUUID()))
			}
			switch status.GetState() {
			case mesos.TASK_FINISHED:
				if phase == "wait-writer" {
					phase = "read"
				} else if phase == "wait-reader" {
					phase = "destroy"
				}
			case mesos.TASK_FAILED, mesos.TASK_ERROR, mesos.TASK_LOST, mesos.TASK_DROPPED:
				fail("task %s ended %s: %s", status.TaskID.Value, status.GetState(), status.GetMessage())
			}
		case scheduler.Event_ERROR:
			fail("ERROR event: %s", event.GetError().GetMessage())
		}
	}
}

func main() {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	switch *scenario {
	case "basic":
		basic(ctx)
	case "failover":
		failover(ctx)
	case "volume":
		volume(ctx)
	default:
		fail("unknown scenario %q", *scenario)
	}
}
