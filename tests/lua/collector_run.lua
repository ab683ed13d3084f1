-- Runs the prometheus-node-exporter-lua collector of uplinkd outside OpenWrt: a stub
-- `ubus` module answers `status` with the table in the file given as first argument
-- (a Lua chunk returning it), and `metric` prints the text format as the exporter does.
local status_file, collector = arg[1], arg[2]
local status = dofile(status_file)

package.loaded.ubus = {
  connect = function()
    return {
      call = function(_, object, method)
        assert(object == "uplinkd" and method == "status", object .. "." .. method)
        return status
      end,
      close = function() end,
    }
  end,
}

local function escape(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n"))
end

local function fmt(v)
  if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

function metric(name, mtype, labels, value)
  print("# TYPE " .. name .. " " .. mtype)
  local function out(l, v)
    local keys = {}
    for k in pairs(l or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. '="' .. escape(l[k]) .. '"' end
    local ls = #parts > 0 and ("{" .. table.concat(parts, ",") .. "}") or ""
    print(name .. ls .. " " .. fmt(v))
  end
  if value then out(labels, value) end
  return out
end

dofile(collector).scrape()
