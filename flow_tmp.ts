import { UNET_PRESETS, velocityUnet, paramSpecs } from "./stages/learn/blocks/model.ts";
await Deno.writeTextFile("/tmp/unet.json", JSON.stringify(velocityUnet(1, UNET_PRESETS.tiny)));
console.log(paramSpecs(velocityUnet(1, UNET_PRESETS.tiny), [1,28,28]).filter(s=>s.trainable).reduce((a,s)=>a+s.shape.reduce((x,y)=>x*y,1),0));
