// A Mesos framework written with the Go library Debian ships (mesos-go, v1 HTTP API, JSON codec), used by
// the tests to drive the project's test master with a client the project did not write.
//
// It prints one JSON object per line on stdout (what it saw), and exits 0 when its scenario completed.
//
//	basic:    subscribe, launch tasks that finish, fail and run long on the first offer, acknowledge every
//	          update, reconcile explicitly and implicitly, kill the long task, tear down.
//	failover: subscribe, then subscribe again with the same framework id on a second connection; the first
//	          stream must end with ERROR "Framework failed over", the second must get offers.
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
	scenario = flag.String("scenario", "basic", "basic | failover")
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

func main() {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	switch *scenario {
	case "basic":
		basic(ctx)
	case "failover":
		failover(ctx)
	default:
		fail("unknown scenario %q", *scenario)
	}
}
