import { describe, expect, it } from "vitest";
import { parseControlRequest } from "./control-socket.ts";
import { checkServiceSet, diffServices, parseServiceSpec } from "./services.ts";

describe("service lists", () => {
  it("reads name:port[/health-path] as the upstream CLI writes it", () => {
    expect(parseServiceSpec("api:3001")).toEqual({ name: "api", port: 3001 });
    expect(parseServiceSpec(" store:3002/health ")).toEqual({ name: "store", port: 3002, healthUrl: "http://127.0.0.1:3002/health" });
    expect(() => parseServiceSpec("api")).toThrow(/is not name:port\[\/health-path\]/);
    expect(() => parseServiceSpec("api:0")).toThrow(/port must be a port from 1 to 65535/);
    expect(() => parseServiceSpec("api:65536")).toThrow(/port must be a port from 1 to 65535/);
    expect(() => parseServiceSpec("Api:3001")).toThrow(/lowercase letters, digits and inner hyphens/);
  });

  it("refuses a name or a port twice", () => {
    expect(() => checkServiceSet([parseServiceSpec("a:1"), parseServiceSpec("a:2")])).toThrow(/"a" is named twice/);
    expect(() => checkServiceSet([parseServiceSpec("a:1"), parseServiceSpec("b:1")])).toThrow(/"b" and "a" both name port 1/);
    expect(checkServiceSet([parseServiceSpec("a:1"), parseServiceSpec("b:2")]).map((s) => s.name)).toEqual(["a", "b"]);
  });

  it("says what a new list adds, removes and changes", () => {
    const from = [parseServiceSpec("a:1"), parseServiceSpec("b:2"), parseServiceSpec("c:3")];
    const to = [parseServiceSpec("a:1"), parseServiceSpec("b:2/health"), parseServiceSpec("d:4")];
    const d = diffServices(from, to);
    expect(d.remove).toEqual(["c"]);
    expect(d.add.map((s) => s.name)).toEqual(["d"]);
    expect(d.change.map((s) => s.name)).toEqual(["b"]);
    // Tags in another order are the same settings.
    const t1 = [{ name: "a", port: 1, tags: { x: "1", y: "2" } }];
    const t2 = [{ name: "a", port: 1, tags: { y: "2", x: "1" } }];
    expect(diffServices(t1, t2)).toEqual({ remove: [], add: [], change: [] });
  });
});

describe("control requests", () => {
  it("accepts the four operations and refuses anything else with what is wrong", () => {
    expect(parseControlRequest('{"op":"list"}')).toEqual({ op: "list" });
    expect(parseControlRequest('{"op":"remove","name":"api"}')).toEqual({ op: "remove", name: "api" });
    expect(parseControlRequest('{"op":"add","spec":{"name":"api","port":3001,"healthUrl":"http://127.0.0.1:3001/h","tags":{"v":"1"}}}')).toEqual({
      op: "add",
      spec: { name: "api", port: 3001, healthUrl: "http://127.0.0.1:3001/h", tags: { v: "1" } },
    });
    expect(parseControlRequest("nope")).toEqual({ error: "not JSON" });
    expect(parseControlRequest("[1]")).toMatchObject({ error: expect.stringMatching(/unknown op/) });
    expect(parseControlRequest('{"op":"exec","cmd":"sh"}')).toMatchObject({ error: expect.stringMatching(/unknown op "exec"/) });
    expect(parseControlRequest('{"op":"remove","name":"../x"}')).toMatchObject({ error: expect.stringMatching(/lowercase letters/) });
    expect(parseControlRequest('{"op":"add","spec":{"name":"api","port":"3001"}}')).toMatchObject({ error: expect.stringMatching(/port must be a port/) });
    expect(parseControlRequest('{"op":"add","spec":{"name":"api","port":1,"healthUrl":"file:///etc/passwd"}}')).toMatchObject({
      error: expect.stringMatching(/healthUrl must be an http\(s\):\/\/ or tcp:\/\/ URL/),
    });
    expect(parseControlRequest('{"op":"add","spec":{"name":"api","port":1,"tags":{"v":1}}}')).toMatchObject({ error: expect.stringMatching(/tags must be an object of strings/) });
  });
});
