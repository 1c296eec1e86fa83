/**
 * Both binaries' /metrics on the real control plane, scraped after one SVID was issued and
 * approved: the names dashboards built on the Go original (and on Node services) look for are there
 * with their label names — process and Node.js runtime metrics on both; on the approver client-go's
 * workqueue, leader-election and REST client series and controller-runtime's reconcile counter; on
 * the driver cert-manager/csi-lib's managed-volume and issue counters.
 */
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { waitFor } from "../harness/process.ts"
import { NODE, type Stack, startStack } from "./stack.ts"

const plane = inject("controlPlane")
const NS = "metrics-e2e"

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

const scrape = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()

/** Sample lines whose metric name is exactly `name`. */
const samples = (text: string, name: string) => text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))

const PROCESS = [
  "process_resident_memory_bytes",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "process_open_fds",
  "process_max_fds",
  "nodejs_heap_size_used_bytes",
  "nodejs_eventloop_lag_seconds"
]

describe("/metrics of both binaries on the real plane", () => {
  let stack: Stack
  let driverPort: number
  let approverPort: number

  beforeAll(async () => {
    driverPort = await freePort()
    approverPort = await freePort()
    stack = await startStack(plane, {
      name: "metrics",
      driverArgs: [`--metrics-bind-address=127.0.0.1:${driverPort}`],
      approverArgs: [`--metrics-bind-address=127.0.0.1:${approverPort}`]
    })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("carries the original's and csi-lib's metric names after an issuance", async () => {
    const pod = await stack.pod({ namespace: NS, serviceAccount: "metrics-pod", podName: "metrics-pod-0" })
    await stack.call("NodePublishVolume", await stack.publishRequest(pod))

    const driver = await scrape(driverPort)
    for (const name of PROCESS) expect(samples(driver, name), `driver ${name}`).toHaveLength(1)
    expect(samples(driver, "certmanager_csi_managed_volume_count")).toEqual([`certmanager_csi_managed_volume_count{node="${NODE}"} 1`])
    expect(Number(samples(driver, "certmanager_csi_issue_requests_total")[0]?.split(" ")[1])).toBeGreaterThanOrEqual(1)
    expect(samples(driver, "certmanager_csi_issue_errors_total")).toHaveLength(1)
    expect(samples(driver, "rest_client_requests_total").some((l) => /code="201",method="POST",host="[^"]+"/.test(l))).toBe(true)

    // The approver reports its Lease once it leads; the request above was approved, so it does.
    const approver = await waitFor("the approver reporting itself as leader", async () => {
      const text = await scrape(approverPort)
      return samples(text, "leader_election_master_status").some((l) => l.endsWith(" 1")) ? text : undefined
    }, { timeoutMs: 30_000, intervalMs: 250 })
    for (const name of PROCESS) expect(samples(approver, name), `approver ${name}`).toHaveLength(1)
    expect(samples(approver, "leader_election_master_status")).toEqual(['leader_election_master_status{name="spiffe.csi.cert-manager.io"} 1'])
    expect(samples(approver, "workqueue_adds_total").some((l) => l.startsWith('workqueue_adds_total{name="certificaterequest"} '))).toBe(true)
    expect(samples(approver, "workqueue_depth").some((l) => l.startsWith('workqueue_depth{name="certificaterequest"} '))).toBe(true)
    expect(samples(approver, "workqueue_work_duration_seconds_count").some((l) => l.includes('name="certificaterequest"'))).toBe(true)
    expect(samples(approver, "controller_runtime_reconcile_total").some((l) => l.startsWith('controller_runtime_reconcile_total{controller="certificaterequest",result="success"} '))).toBe(true)
    expect(samples(approver, "rest_client_requests_total").some((l) => /code="200",method="GET",host="[^"]+"/.test(l))).toBe(true)
    await stack.unpublish(pod)
  })
})
