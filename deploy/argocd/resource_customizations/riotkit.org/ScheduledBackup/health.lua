-- ArgoCD health check for riotkit.org/ScheduledBackup (backup-maker).
-- Written for ArgoCD's Lua 5.1 (gopher-lua); deploy/argocd/tests runs it on Lua 5.1 and 5.4.
-- `obj` is the live object; the result is {status = Healthy|Progressing|Degraded|Suspended, message}.
local hs = {}

local function condition(ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

-- Ready=False for these reasons is a wait, not an error: the controllers resolve it on their own.
local waitingReasons = { WaitingForKeySecret = true, Reconciling = true }

local generation = obj.metadata.generation
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to reconcile this ScheduledBackup"
  return hs
end
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
if ready == nil or (generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status == "False" then
  if waitingReasons[ready.reason] then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = text(ready, "Not ready")
  return hs
end
if ready.status ~= "True" then
  hs.status = "Progressing"
  hs.message = text(ready, "Readiness unknown")
  return hs
end

local lastRun = condition("LastRunSucceeded")
local lastRunFailed = lastRun ~= nil and lastRun.status == "False"

if obj.spec ~= nil and obj.spec.cronJob ~= nil and obj.spec.cronJob.suspend == true then
  hs.status = "Suspended"
  hs.message = "The backup CronJob is suspended (spec.cronJob.suspend)"
  if lastRunFailed then
    hs.message = hs.message .. "; last run failed: " .. text(lastRun, "no details")
  end
  return hs
end

if lastRunFailed then
  hs.status = "Degraded"
  hs.message = "Last run failed: " .. text(lastRun, "no details")
  return hs
end

-- Overdue: no run succeeded within spec.cronJob.overdueAfter (the controller flips it at the deadline).
local overdue = condition("Overdue")
if overdue ~= nil and overdue.status == "True" then
  hs.status = "Degraded"
  hs.message = "Overdue: " .. text(overdue, "no recent successful run")
  return hs
end

hs.status = "Healthy"
hs.message = text(ready, "Ready")
return hs
